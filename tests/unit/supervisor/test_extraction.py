"""Entity, preference and summary rules, as tables."""

from __future__ import annotations

import pytest

from memlayer.records import EntityInput
from memlayer.supervisor.extraction import (
    SUMMARY_MAX_LENGTH,
    extract,
    extract_budget,
    turn_summary,
)


@pytest.mark.parametrize(
    ("query", "districts"),
    [
        ("강남구 아파트 시세", ("강남구",)),
        ("강남 아파트 시세", ("강남구",)),  # the bare form is the same district
        ("서초구랑 송파구 비교해줘", ("서초구", "송파구")),  # order of mention
        ("마포 용산 마포", ("마포구", "용산구")),  # each once
        ("동대문구와 서대문구", ("동대문구", "서대문구")),
        ("중구 오피스텔", ("중구",)),
        ("Apartments in Gangnam-gu and Mapo", ("강남구", "마포구")),
        ("SEOCHO officetel", ("서초구",)),
        ("동작 그만", ()),  # "동작" alone is a word, not 동작구
        ("Tell me about mapomatic", ()),  # English needs word edges
        ("부동산 어때요", ()),
    ],
)
def test_districts(query: str, districts: tuple[str, ...]) -> None:
    assert extract(query).districts == districts


@pytest.mark.parametrize(
    ("query", "property_types", "deal_types"),
    [
        ("강남구 아파트 전세", ("아파트",), ("전세",)),
        ("오피스텔 월세 얼마예요", ("오피스텔",), ("월세",)),
        ("빌라 매매 괜찮을까", ("빌라",), ("매매",)),
        ("깡통전세 조심", (), ("전세",)),
        ("an apartment on jeonse", ("아파트",), ("전세",)),
        ("officetel for monthly rent", ("오피스텔",), ("월세",)),
        ("villa to buy", ("빌라",), ("매매",)),
        ("오늘 날씨", (), ()),
    ],
)
def test_property_and_deal_types(
    query: str, property_types: tuple[str, ...], deal_types: tuple[str, ...]
) -> None:
    result = extract(query)
    assert result.property_types == property_types
    assert result.deal_types == deal_types


@pytest.mark.parametrize(
    ("query", "amount", "bound"),
    [
        ("5억 아파트", 500_000_000, "around"),
        ("10억 이하 아파트", 1_000_000_000, "max"),
        ("3억 5천 전세", 350_000_000, "around"),
        ("3.5억까지", 350_000_000, "max"),
        ("보증금 5천만원 이상", 50_000_000, "min"),
        ("월세 80만원", 800_000, "around"),
        ("8,000만 원 정도", 80_000_000, "around"),
        ("under 1 billion won", 1_000_000_000, "max"),
        ("at least 500 million KRW", 500_000_000, "min"),
    ],
)
def test_budget(query: str, amount: int, bound: str) -> None:
    budget = extract_budget(query)
    assert budget is not None
    assert (budget.amount_krw, budget.bound) == (amount, bound)


@pytest.mark.parametrize("query", ["강남구 아파트", "LTV 70%", "84㎡ 30평", "2024년 시세"])
def test_no_budget_without_an_amount_of_money(query: str) -> None:
    assert extract_budget(query) is None


def test_extraction_gives_entities_and_preferences_in_the_service_shapes() -> None:
    result = extract("강남구나 서초구 아파트 전세, 10억 이하로 찾아요")
    assert result.entities == (
        EntityInput("district", "강남구"),
        EntityInput("district", "서초구"),
        EntityInput("property_type", "아파트"),
        EntityInput("deal_type", "전세"),
    )
    assert result.names == ("강남구", "서초구", "아파트", "전세")
    assert result.preferences == {
        "region": "강남구",
        "property_type": "아파트",
        "deal_type": "전세",
        "budget": {"amount_krw": 1_000_000_000, "bound": "max", "text": "10억"},
    }


def test_nothing_to_remember_gives_no_preferences() -> None:
    assert extract("부동산 어때요").preferences == {}


@pytest.mark.parametrize(
    ("query", "summary"),
    [
        ("강남구 아파트 시세 알려줘", "강남구 아파트 시세 알려줘"),
        ("  강남구\n아파트   시세 ", "강남구 아파트 시세"),
    ],
)
def test_summary_is_the_question_tidied(query: str, summary: str) -> None:
    assert turn_summary(query) == summary


def test_summary_of_a_long_question_is_bounded() -> None:
    summary = turn_summary("아파트 " * 500)
    assert len(summary) == SUMMARY_MAX_LENGTH
    assert summary.endswith("…")
