"""The rule-based answer: it shows the user which earlier conversation it used."""

from __future__ import annotations

from typing import Any

import pytest

from memlayer.supervisor.responder import RuleBasedResponder, related_memory

GANGNAM = {"summary": "강남구 아파트 시세 알려줘", "intent": "market", "entities": ["강남구"]}
LOAN = {"summary": "LTV 한도 문의", "intent": "loan", "entities": []}
MAPO = {"summary": "마포구 전세 계약", "intent": "contract", "entities": ["마포구", "전세"]}


async def _answer(query: str, intent: str, **kwargs: Any) -> str:
    arguments: dict[str, Any] = {
        "planning_state": {},
        "memories": [],
        "preferences": {},
        "team_results": {},
    }
    arguments.update(kwargs)
    return await RuleBasedResponder().respond(query=query, intent=intent, **arguments)


@pytest.mark.parametrize(
    ("names", "intent", "expected"),
    [
        ([], "risk", LOAN),  # nothing shared: the newest
        ([], "market", GANGNAM),  # same intent
        (["마포구"], "market", MAPO),  # a shared entity beats a shared intent
    ],
)
def test_related_memory_prefers_shared_entities_then_intent_then_recency(
    names: list[str], intent: str, expected: dict[str, Any]
) -> None:
    assert related_memory([LOAN, GANGNAM, MAPO], names, intent) is expected


def test_no_memories_no_related_memory() -> None:
    assert related_memory([], ["강남구"], "market") is None


async def test_answer_names_the_earlier_topic_and_its_entities() -> None:
    answer = await _answer("대출 한도는요?", "loan", memories=[GANGNAM])
    assert answer.startswith("지난번에 문의하신 '강남구 아파트 시세 알려줘'와 관련해서")
    assert "이전 상담에서 말씀하신 강남구 정보도 함께 참고했어요." in answer


async def test_particle_follows_the_last_syllable() -> None:
    answer = await _answer("전세사기 위험", "risk", memories=[MAPO])
    assert "'마포구 전세 계약'과 관련해서" in answer


async def test_answer_without_memories_does_not_pretend_to_remember() -> None:
    answer = await _answer(
        "강남구 시세",
        "market",
        team_results={"search_team": {"summary": "검색팀: 자료를 찾았습니다."}},
    )
    assert "지난번" not in answer
    assert "- 검색팀: 자료를 찾았습니다." in answer


async def test_a_remembered_region_is_offered_when_the_query_has_none() -> None:
    answer = await _answer("시세 알려줘", "market", preferences={"region": "송파구"})
    assert "송파구 기준으로도" in answer


async def test_unclear_asks_which_topic_and_irrelevant_declines() -> None:
    assert "조금 더 알려주시겠어요" in await _answer("부동산 어때요", "unclear")
    assert "부동산 상담 도우미" in await _answer("오늘 날씨", "irrelevant", memories=[GANGNAM])
