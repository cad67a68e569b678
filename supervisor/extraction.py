"""Entities and preferences pulled out of a query by rules, for long-term memory.

What we remember of a turn must be cheap and predictable to extract: Seoul districts,
property and deal types, and a budget. Names are canonical Korean ("Gangnam" and "강남"
are both "강남구") so that memories written in either language meet in one entity row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from memlayer.records import EntityInput

# The 25 districts (구) of Seoul: canonical name, bare Korean forms, English forms.
# A bare form is left out where it is an ordinary word ("동작" = motion, "중" = middle).
_DISTRICTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("강남구", ("강남",), ("gangnam",)),
    ("강동구", ("강동",), ("gangdong",)),
    ("강북구", ("강북",), ("gangbuk",)),
    ("강서구", ("강서",), ("gangseo",)),
    ("관악구", ("관악",), ("gwanak",)),
    ("광진구", ("광진",), ("gwangjin",)),
    ("구로구", ("구로",), ("guro",)),
    ("금천구", ("금천",), ("geumcheon",)),
    ("노원구", ("노원",), ("nowon",)),
    ("도봉구", ("도봉",), ("dobong",)),
    ("동대문구", ("동대문",), ("dongdaemun",)),
    ("동작구", (), ("dongjak",)),
    ("마포구", ("마포",), ("mapo",)),
    ("서대문구", ("서대문",), ("seodaemun",)),
    ("서초구", ("서초",), ("seocho",)),
    ("성동구", ("성동",), ("seongdong",)),
    ("성북구", ("성북",), ("seongbuk",)),
    ("송파구", ("송파",), ("songpa",)),
    ("양천구", ("양천",), ("yangcheon",)),
    ("영등포구", ("영등포",), ("yeongdeungpo",)),
    ("용산구", ("용산",), ("yongsan",)),
    ("은평구", ("은평",), ("eunpyeong",)),
    ("종로구", ("종로",), ("jongno",)),
    ("중구", (), ("jung-gu",)),
    ("중랑구", ("중랑",), ("jungnang",)),
)

# Buildings people live in, and how they hold them (rent, lease, buy).
_PROPERTY_TYPES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("아파트", ("아파트",), ("apartment", "apartments", "apt")),
    ("오피스텔", ("오피스텔",), ("officetel", "officetels")),
    ("빌라", ("빌라",), ("villa", "villas")),
    ("원룸", ("원룸",), ("studio", "studios")),
    ("단독주택", ("단독주택",), ("detached house",)),
)
_DEAL_TYPES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("전세", ("전세",), ("jeonse", "key money lease", "key-money lease")),
    ("월세", ("월세",), ("wolse", "monthly rent")),
    ("매매", ("매매", "매수", "구매"), ("purchase", "buy", "buying")),
)


def _alternation(table: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]) -> str:
    """One regex for a table, longest form first so "강남구" wins over "강남"."""
    forms: list[tuple[str, bool]] = []
    for canonical, korean, english in table:
        forms += [(canonical, False)] + [(k, False) for k in korean]
        forms += [(e, True) for e in english]
        forms.append((canonical, False))
    parts = []
    for form, is_english in sorted(set(forms), key=lambda f: -len(f[0])):
        escaped = re.escape(form)
        # English between non-letters ("mapo" not in "mapomatic"); "-gu" is optional.
        parts.append(rf"(?<![a-z]){escaped}(?:-gu)?(?![a-z])" if is_english else escaped)
    return "|".join(parts)


def _lookup(
    table: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...],
) -> dict[str, str]:
    names = {}
    for canonical, korean, english in table:
        for form in (canonical, *korean, *english):
            names[form.lower()] = canonical
    return names


_DISTRICT_RE = re.compile(_alternation(_DISTRICTS), re.IGNORECASE)
_DISTRICT_NAMES = _lookup(_DISTRICTS)
_PROPERTY_RE = re.compile(_alternation(_PROPERTY_TYPES), re.IGNORECASE)
_PROPERTY_NAMES = _lookup(_PROPERTY_TYPES)
_DEAL_RE = re.compile(_alternation(_DEAL_TYPES), re.IGNORECASE)
_DEAL_NAMES = _lookup(_DEAL_TYPES)

DISTRICT_PATTERN: re.Pattern[str] = _DISTRICT_RE
"""Matches any Seoul district form; the intent rules use it as a real-estate signal."""

# --- budget ---------------------------------------------------------------------------

_EOK = 100_000_000
_MAN = 10_000
# 1,000조 원: above any property, far inside int64. A larger "amount" is not a budget
# (it is a typo or an attack: "1" and 400 zeros would not fit msgpack or JSON numbers).
MAX_BUDGET_KRW = 10**15
_MAX_DIGITS = 16  # longer digit runs are never a budget; nothing is parsed from them
_MAX_TEXT = 40  # "1,,,,,,,,…만원" is not a budget either
_UPPER = ("이하", "미만", "까지", "안쪽", "이내", "under", "below", "up to", "at most", "max")
_LOWER = ("이상", "초과", "over", "above", "at least", "min")

# "10억", "3억 5천", "3.5억", "5천만원", "8000만 원"; English "1 billion won", "500 million".
_BUDGET_KO = re.compile(
    r"(?P<eok>\d+(?:\.\d+)?)\s*억(?:\s*(?P<cheon>\d)\s*천(?:\s*만)?)?\s*원?"
    r"|(?P<cheon_only>\d)\s*천\s*만\s*원?"
    r"|(?P<man>\d[\d,]*)\s*만\s*원?"
)
_BUDGET_EN = re.compile(
    r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>billion|million)\s*(?:won|krw)?", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Budget:
    """An amount in won and which way it bounds the search."""

    amount_krw: int
    bound: str  # "max", "min" or "around"
    text: str

    def as_preference(self) -> dict[str, Any]:
        return {"amount_krw": self.amount_krw, "bound": self.bound, "text": self.text}


def extract_budget(query: str) -> Budget | None:
    """The first amount of money in the query, with its bound ("10억 이하" → max 1e9).

    None if there is none, or if it is not a sane amount (see ``MAX_BUDGET_KRW``).
    """
    match = _BUDGET_KO.search(query)
    if match:
        if match["eok"]:
            eok = _number(match["eok"])
            amount = None if eok is None else eok * _EOK + int(match["cheon"] or 0) * 1000 * _MAN
        elif match["cheon_only"]:
            amount = int(match["cheon_only"]) * 1000 * _MAN
        else:
            man = _number(match["man"].replace(",", ""))
            amount = None if man is None else man * _MAN
    else:
        match = _BUDGET_EN.search(query)
        if not match:
            return None
        unit = 1_000_000_000 if match["unit"].lower() == "billion" else 1_000_000
        number = _number(match["num"])
        amount = None if number is None else number * unit
    text = match.group(0).strip()
    if amount is None or not 0 < amount <= MAX_BUDGET_KRW or len(text) > _MAX_TEXT:
        return None
    return Budget(int(amount), _bound(query, match.start(), match.end()), text)


def _number(text: str) -> float | None:
    """A digit string ("3", "3.5", "8000") as a number; None if it is too long to be one."""
    if len(text) > _MAX_DIGITS:
        return None
    return float(text) if "." in text else int(text)


def _bound(query: str, start: int, end: int) -> str:
    after = query[end : end + 12].lower()
    before = query[max(0, start - 12) : start].lower()
    if any(word in after or word in before for word in _UPPER):
        return "max"
    if any(word in after or word in before for word in _LOWER):
        return "min"
    return "around"


# --- the whole extraction -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Extraction:
    """What a turn teaches us about the user, in the shapes the memory service takes."""

    districts: tuple[str, ...] = ()
    property_types: tuple[str, ...] = ()
    deal_types: tuple[str, ...] = ()
    budget: Budget | None = None
    entities: tuple[EntityInput, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        """Entity names as a conversation memory lists them."""
        return tuple(entity.name for entity in self.entities)

    @property
    def preferences(self) -> dict[str, Any]:
        """Preferences the query states; the first-mentioned value wins."""
        prefs: dict[str, Any] = {}
        if self.districts:
            prefs["region"] = self.districts[0]
        if self.property_types:
            prefs["property_type"] = self.property_types[0]
        if self.deal_types:
            prefs["deal_type"] = self.deal_types[0]
        if self.budget is not None:
            prefs["budget"] = self.budget.as_preference()
        return prefs


def _find(pattern: re.Pattern[str], names: dict[str, str], text: str) -> tuple[str, ...]:
    found: list[str] = []
    for match in pattern.finditer(text):
        form = match.group(0).lower().removesuffix("-gu")
        canonical = names.get(form) or names.get(match.group(0).lower())
        if canonical and canonical not in found:
            found.append(canonical)
    return tuple(found)


def extract(query: str) -> Extraction:
    """Districts, property and deal types, and a budget, in order of mention."""
    text = " ".join(query.split())
    districts = _find(_DISTRICT_RE, _DISTRICT_NAMES, text)
    property_types = _find(_PROPERTY_RE, _PROPERTY_NAMES, text)
    deal_types = _find(_DEAL_RE, _DEAL_NAMES, text)
    entities = (
        tuple(EntityInput("district", name) for name in districts)
        + tuple(EntityInput("property_type", name) for name in property_types)
        + tuple(EntityInput("deal_type", name) for name in deal_types)
    )
    return Extraction(districts, property_types, deal_types, extract_budget(text), entities)


SUMMARY_MAX_LENGTH = 200


def turn_summary(query: str, max_length: int = SUMMARY_MAX_LENGTH) -> str:
    """The conversation memory of one turn: the question itself, tidied and bounded.

    The answer quotes it back later ("지난번에 문의하신 '…'"), so it must read as the
    user wrote it, and it must fit the service's summary limit whatever the user typed.
    """
    text = " ".join(query.split())
    if len(text) <= max_length:
        return text
    return text[: max_length - 1].rstrip() + "…"
