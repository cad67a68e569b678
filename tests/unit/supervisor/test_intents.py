"""The intent rules, as a table: query → intent (Korean and English)."""

from __future__ import annotations

import pytest

from memlayer.supervisor.intents import (
    MEMORY_LIMITS,
    Intent,
    classify_intent,
    teams_for,
)

CASES = [
    # market
    ("강남구 아파트 시세 알려줘", Intent.MARKET),
    ("요즘 마포 집값 어때요?", Intent.MARKET),
    ("송파구 매매가가 얼마예요", Intent.MARKET),
    ("월세 시세가 궁금해요", Intent.MARKET),  # a weak contract word yields to a topic
    ("What are apartment prices in Gangnam?", Intent.MARKET),
    ("How is the housing market in Seoul?", Intent.MARKET),
    # loan
    ("주택담보대출 금리가 얼마예요?", Intent.LOAN),
    ("LTV가 뭐예요", Intent.LOAN),
    ("DSR 규제 때문에 한도가 줄었어요", Intent.LOAN),
    ("대출 방법 알려줘", Intent.LOAN),  # "방법" is not "법"
    ("What mortgage can I get?", Intent.LOAN),
    ("How does a home loan work?", Intent.LOAN),
    # legal
    ("취득세는 얼마나 내나요", Intent.LEGAL),
    ("임대차보호법이 궁금해요", Intent.COMPREHENSIVE),  # 임대차 (contract) + 법 (legal)
    ("다주택자 양도세 알려주세요", Intent.LEGAL),
    ("What tax do I pay when I buy a flat?", Intent.LEGAL),
    ("Is that legal?", Intent.LEGAL),
    # contract
    ("전세계약 할 때 주의할 점", Intent.CONTRACT),
    ("월세 계약서 특약 써도 되나요", Intent.CONTRACT),
    ("전세 구하고 있어요", Intent.CONTRACT),  # weak word alone
    ("Can I break my lease early?", Intent.CONTRACT),
    ("Review my rental contract please", Intent.CONTRACT),
    # risk
    ("깡통전세 위험 어떻게 알아봐요", Intent.RISK),
    ("전세사기 당하지 않으려면", Intent.RISK),
    ("Is this jeonse a fraud?", Intent.RISK),
    ("What are the risks of buying off-plan?", Intent.RISK),
    # comprehensive
    ("강남 아파트 시세랑 대출 한도 알려줘", Intent.COMPREHENSIVE),
    ("취득세와 계약 절차, 전세사기 위험까지", Intent.COMPREHENSIVE),
    ("부동산 매수 전반적으로 종합해서 알려줘", Intent.COMPREHENSIVE),
    ("Compare prices and mortgage rates", Intent.COMPREHENSIVE),
    # unclear: about real estate, but no topic
    ("부동산 어때요", Intent.UNCLEAR),
    ("아파트 살까요?", Intent.UNCLEAR),
    ("서초구 어때요", Intent.UNCLEAR),
    ("Tell me about real estate", Intent.UNCLEAR),
    # irrelevant
    ("오늘 날씨 어때요", Intent.IRRELEVANT),
    ("점심 맛집 추천해줘", Intent.IRRELEVANT),
    ("음식 가격이 너무 올랐어요", Intent.IRRELEVANT),  # a topic word, but about food
    ("친구랑 영화 볼까", Intent.IRRELEVANT),
    ("안녕하세요", Intent.IRRELEVANT),
    ("What's the weather like tomorrow?", Intent.IRRELEVANT),
    ("Recommend a good pasta recipe", Intent.IRRELEVANT),
    ("", Intent.IRRELEVANT),
]


@pytest.mark.parametrize(("query", "intent"), CASES)
def test_intent_rules(query: str, intent: Intent) -> None:
    assert classify_intent(query).intent is intent


def test_off_topic_words_do_not_hide_a_real_estate_question() -> None:
    assert classify_intent("맛집 많은 동네 아파트 시세").intent is Intent.MARKET


def test_english_keywords_need_word_edges_but_korean_particles_are_fine() -> None:
    assert classify_intent("I took a taxi").intent is Intent.IRRELEVANT  # not "tax"
    assert classify_intent("LTV가 70%면").intent is Intent.LOAN


def test_comprehensive_keeps_every_topic_it_found() -> None:
    match = classify_intent("강남 아파트 시세랑 대출 한도, 취득세")
    assert match.topics == (Intent.MARKET, Intent.LOAN, Intent.LEGAL)


@pytest.mark.parametrize(
    ("intent", "limit"),
    [
        (Intent.COMPREHENSIVE, 5),
        (Intent.UNCLEAR, 5),
        (Intent.MARKET, 3),
        (Intent.LOAN, 3),
        (Intent.LEGAL, 3),
        (Intent.CONTRACT, 3),
        (Intent.RISK, 3),
        (Intent.IRRELEVANT, 0),
    ],
)
def test_memory_limit_by_intent(intent: Intent, limit: int) -> None:
    assert MEMORY_LIMITS[intent] == limit


@pytest.mark.parametrize(
    ("topics", "teams"),
    [
        ((Intent.MARKET,), ("search_team", "analysis_team")),
        ((Intent.LEGAL,), ("search_team",)),
        ((Intent.CONTRACT,), ("search_team", "document_team")),
        ((Intent.CONTRACT, Intent.MARKET), ("search_team", "analysis_team", "document_team")),
        ((), ()),
    ],
)
def test_teams_run_once_each_in_a_fixed_order(
    topics: tuple[Intent, ...], teams: tuple[str, ...]
) -> None:
    assert teams_for(topics) == teams
