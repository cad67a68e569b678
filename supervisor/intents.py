"""Intent rules: which kind of real-estate question a query is, without an LLM.

No model is reachable from the workflow, so intent comes from keyword rules. They are
tables, not code, so they read (and are tested) as a specification. Korean has no word
boundaries (particles stick to nouns: "대출이", "LTV가"), hence the matching rules of
``_keywords``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from memlayer.supervisor.extraction import DISTRICT_PATTERN


class Intent(StrEnum):
    MARKET = "market"
    LOAN = "loan"
    LEGAL = "legal"
    CONTRACT = "contract"
    RISK = "risk"
    COMPREHENSIVE = "comprehensive"  # several of the topical intents at once
    UNCLEAR = "unclear"  # about real estate, but no topic we can act on
    IRRELEVANT = "irrelevant"  # not about real estate: no memory read or written


TOPICAL: tuple[Intent, ...] = (
    Intent.MARKET,
    Intent.LOAN,
    Intent.LEGAL,
    Intent.CONTRACT,
    Intent.RISK,
)


def _keywords(
    korean: Iterable[str] = (), english: Iterable[str] = (), patterns: Iterable[str] = ()
) -> re.Pattern[str]:
    """One case-insensitive pattern: Korean as substrings, English between non-letters
    (so "tax" does not match "taxi" but does match "tax가")."""
    parts = [re.escape(word) for word in korean]
    parts += [rf"(?<![a-z]){re.escape(word)}(?![a-z])" for word in english]
    parts += list(patterns)
    return re.compile("|".join(parts), re.IGNORECASE)


# A topical keyword decides the intent. Several topics at once make it comprehensive.
_TOPIC_KEYWORDS: dict[Intent, re.Pattern[str]] = {
    Intent.MARKET: _keywords(
        korean=(
            "시세",
            "가격",
            "매매가",
            "실거래",
            "집값",
            "호가",
            "시장",
            "얼마에",
            "오를까",
            "떨어질까",
        ),
        english=("price", "prices", "market", "valuation", "worth"),
    ),
    Intent.LOAN: _keywords(
        korean=("대출", "금리", "주담대", "이자", "담보", "한도"),
        english=("ltv", "dsr", "dti", "loan", "loans", "mortgage", "interest rate", "financing"),
    ),
    Intent.LEGAL: _keywords(
        korean=(
            "세금",
            "취득세",
            "양도세",
            "양도소득세",
            "종부세",
            "재산세",
            "보유세",
            "증여세",
            "상속세",
            "등기",
            "세율",
            "절세",
        ),
        english=("legal", "law", "laws", "tax", "taxes", "lawyer", "attorney", "regulation"),
        patterns=(r"(?<!방)법",),  # law, but not "방법" (a way to do something)
    ),
    Intent.CONTRACT: _keywords(
        korean=("계약", "임대차", "계약금", "중도금", "잔금", "특약", "갱신"),
        english=("contract", "contracts", "lease", "leases", "tenancy", "rental agreement"),
    ),
    Intent.RISK: _keywords(
        korean=("위험", "깡통전세", "사기", "리스크", "안전한", "안전할", "보증보험"),
        english=("risk", "risks", "risky", "fraud", "scam", "safe", "dangerous"),
    ),
}

# Weak keywords name a topic only when nothing stronger does: "월세 계약" is a
# contract question, but "월세 시세" is a market one.
_WEAK_KEYWORDS: dict[Intent, re.Pattern[str]] = {
    Intent.CONTRACT: _keywords(korean=("월세", "전세"), english=("rent", "jeonse", "wolse")),
}

# Asking for "everything" about a real-estate subject.
_COMPREHENSIVE = _keywords(
    korean=("종합", "전반적", "전부 알려", "모두 알려", "총정리"),
    english=("comprehensive", "overall", "everything", "all aspects"),
)

# Words that make a query about real estate at all (districts count too).
_DOMAIN = _keywords(
    korean=(
        "부동산",
        "아파트",
        "오피스텔",
        "빌라",
        "주택",
        "매물",
        "전세",
        "월세",
        "매매",
        "청약",
        "분양",
        "재건축",
        "재개발",
        "상가",
        "토지",
        "원룸",
        "투룸",
        "이사",
        "입주",
        "임대",
        "내 집",
        "집 사",
        "집을",
        "집이",
        "평수",
        "동네",
    ),
    english=(
        "real estate",
        "property",
        "properties",
        "apartment",
        "apartments",
        "house",
        "housing",
        "home",
        "homes",
        "condo",
        "officetel",
        "villa",
        "realtor",
        "jeonse",
        "rent",
        "landlord",
        "tenant",
        "neighborhood",
    ),
)

# Clearly another subject. Decides "irrelevant" only when no domain word is present:
# "음식 가격" is about food, "맛집 근처 아파트 시세" is about real estate.
_OFF_TOPIC = _keywords(
    korean=(
        "날씨",
        "맛집",
        "음식",
        "요리",
        "레시피",
        "영화",
        "드라마",
        "축구",
        "야구",
        "게임",
        "노래",
        "점심",
        "저녁 메뉴",
        "주식",
        "코인",
    ),
    english=(
        "weather",
        "food",
        "recipe",
        "restaurant",
        "movie",
        "football",
        "soccer",
        "game",
        "lunch",
        "dinner",
        "song",
        "stock",
        "bitcoin",
    ),
)


@dataclass(frozen=True, slots=True)
class IntentMatch:
    """The decided intent and the topics that led to it (for teams and for tests)."""

    intent: Intent
    topics: tuple[Intent, ...] = ()
    keywords: tuple[str, ...] = ()


def classify_intent(query: str) -> IntentMatch:
    """Classify a query by the rule tables above."""
    text = " ".join(query.split())
    topics, keywords = _match(_TOPIC_KEYWORDS, text)
    if not topics:
        topics, keywords = _match(_WEAK_KEYWORDS, text)
    domain = _DOMAIN.search(text) is not None or DISTRICT_PATTERN.search(text) is not None

    if _OFF_TOPIC.search(text) and not domain:
        return IntentMatch(Intent.IRRELEVANT)
    if len(topics) > 1:
        return IntentMatch(Intent.COMPREHENSIVE, topics, keywords)
    if _COMPREHENSIVE.search(text) and (domain or topics):
        return IntentMatch(Intent.COMPREHENSIVE, topics or TOPICAL, keywords)
    if topics:
        return IntentMatch(topics[0], topics, keywords)
    if domain:
        return IntentMatch(Intent.UNCLEAR)
    return IntentMatch(Intent.IRRELEVANT)


def _match(
    table: dict[Intent, re.Pattern[str]], text: str
) -> tuple[tuple[Intent, ...], tuple[str, ...]]:
    topics: list[Intent] = []
    keywords: list[str] = []
    for intent, pattern in table.items():
        found = [m.group(0) for m in pattern.finditer(text)]
        if found:
            topics.append(intent)
            keywords.extend(found)
    return tuple(topics), tuple(keywords)


# How many earlier memories each intent reads. Vague and broad questions read more
# context; irrelevant ones read none (no cache or database call at all).
MEMORY_LIMITS: dict[Intent, int] = {
    Intent.MARKET: 3,
    Intent.LOAN: 3,
    Intent.LEGAL: 3,
    Intent.CONTRACT: 3,
    Intent.RISK: 3,
    Intent.COMPREHENSIVE: 5,
    Intent.UNCLEAR: 5,
    Intent.IRRELEVANT: 0,
}

# Which (stub) teams answer each topic, in the order they run.
TEAMS: dict[Intent, tuple[str, ...]] = {
    Intent.MARKET: ("search_team", "analysis_team"),
    Intent.LOAN: ("search_team", "analysis_team"),
    Intent.LEGAL: ("search_team",),
    Intent.CONTRACT: ("search_team", "document_team"),
    Intent.RISK: ("search_team", "analysis_team"),
}
TEAM_ORDER: tuple[str, ...] = ("search_team", "analysis_team", "document_team")


def teams_for(topics: Iterable[Intent]) -> tuple[str, ...]:
    """The teams the topics need, each once, in a fixed order (events are deterministic)."""
    wanted = {team for topic in topics for team in TEAMS.get(topic, ())}
    return tuple(team for team in TEAM_ORDER if team in wanted)
