"""Search filters: their exact meaning, and the part of them SQL may decide.

Meaning (``InMemoryStore``'s shape, with JSON compared strictly):

- A filter maps top-level field names to conditions; every condition must hold.
- A plain scalar is strict JSON equality: the field is present and has the same JSON type
  and value. ``true`` is not ``1``, ``1`` is not ``1.0``, a missing field is not ``null``,
  integers compare exactly at any size.
- A plain object matches an object field that contains each of its keys with a matching
  condition (recursively; extra keys are allowed, as in ``InMemoryStore``).
- A plain list matches a list field of the same length, element by element.
- An operator object (every key starts with ``$``): ``$eq`` is strict deep equality, ``$ne``
  its negation (so it matches items that lack the field), and ``$gt``/``$gte``/``$lt``/
  ``$lte`` compare numbers with numbers exactly (booleans are not numbers) and strings with
  strings by code point; a field of any other type does not match. An operand that is
  neither a number nor a string, an unknown operator, or a mix of operators and plain keys
  is refused with ``InvalidFilter``.

What SQL may decide: every filter has an *equality skeleton*, a JSON document that every
matching value contains in the sense of Postgres' ``jsonb @>``. Containment is looser than
the rules above (``1 @> 1.0``, arrays match as unordered subsets, operators other than
``$eq`` are dropped), so it is used as a pre-filter only, and Python finishes the match.
When the skeleton is made only of strings, booleans, nulls and non-empty objects of those,
containment and the rules above agree exactly (``exact_in_sql``), and the store lets SQL
apply LIMIT/OFFSET too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memlayer.store import values
from memlayer.store.errors import InvalidFilter, InvalidValue

COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
OPERATORS = ("$eq", "$ne", *COMPARISONS)

_MISSING = object()
_NONE = object()  # "no skeleton": this condition gives SQL nothing to narrow by

Test = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A validated filter: a Python test, its SQL pre-filter, and whether that is exact."""

    fields: tuple[tuple[str, Test], ...]
    containment: dict[str, Any] | None
    exact_in_sql: bool

    def matches(self, value: Mapping[str, Any]) -> bool:
        return all(test(value.get(name, _MISSING)) for name, test in self.fields)


def compile_filter(raw: Mapping[str, Any] | None) -> CompiledFilter | None:
    """None for "no filter"; raises ``InvalidFilter`` for one the store will not answer."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidFilter(f"a filter is a mapping of field names, got {type(raw).__name__}")
    if not raw:
        return None
    try:
        spec = values.plain(dict(raw), "filter")
    except InvalidValue as exc:
        raise InvalidFilter(str(exc)) from None
    fields = tuple((name, _compile(cond, name)) for name, cond in spec.items())
    skeleton: dict[str, Any] = {}
    exact = True
    for name, cond in spec.items():
        part, part_exact = _skeleton(cond) if _jsonb_safe(name) else (_NONE, False)
        if part is _NONE:
            exact = False
        else:
            skeleton[name] = part
            exact = exact and part_exact
    return CompiledFilter(fields, skeleton or None, exact and bool(skeleton))


def json_equal(a: Any, b: Any) -> bool:
    """Strict JSON equality of two decoded values (types distinguished, ints exact)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int) or isinstance(b, int):
        return isinstance(a, int) and isinstance(b, int) and a == b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
        )
    return False


# --- the Python test -------------------------------------------------------------------


def _is_operator_object(cond: Any, where: str) -> bool:
    if not isinstance(cond, dict) or not cond:
        return False
    dollar = [k for k in cond if k.startswith("$")]
    if dollar and len(dollar) != len(cond):
        raise InvalidFilter(
            f"filter {where!r} mixes operators ({', '.join(dollar)}) with plain keys; "
            "use either operators or a nested object"
        )
    return bool(dollar)


def _compile(cond: Any, where: str) -> Test:
    if _is_operator_object(cond, where):
        tests = [_operator(op, operand, where) for op, operand in cond.items()]
        return lambda have: all(test(have) for test in tests)
    if isinstance(cond, dict):
        subs = [(key, _compile(sub, f"{where}.{key}")) for key, sub in cond.items()]
        return lambda have: (
            isinstance(have, dict) and all(test(have.get(key, _MISSING)) for key, test in subs)
        )
    if isinstance(cond, list):
        elements = [_compile(sub, f"{where}[{i}]") for i, sub in enumerate(cond)]
        return lambda have: (
            isinstance(have, list)
            and len(have) == len(elements)
            and all(test(x) for test, x in zip(elements, have, strict=True))
        )
    return lambda have: have is not _MISSING and json_equal(have, cond)


def _operator(op: str, operand: Any, where: str) -> Test:
    if op == "$eq":
        return lambda have: have is not _MISSING and json_equal(have, operand)
    if op == "$ne":
        return lambda have: have is _MISSING or not json_equal(have, operand)
    if op not in COMPARISONS:
        raise InvalidFilter(
            f"unsupported operator {op!r} in filter {where!r}; supported: {', '.join(OPERATORS)}"
        )
    if _is_number(operand):
        kind: Callable[[Any], bool] = _is_number
    elif isinstance(operand, str):
        kind = _is_string
    else:
        raise InvalidFilter(f"{op} in filter {where!r} needs a number or a string, got {operand!r}")
    compare = _COMPARE[op]
    return lambda have: kind(have) and compare(have, operand)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _is_string(x: Any) -> bool:
    return isinstance(x, str)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


# --- the SQL skeleton ------------------------------------------------------------------


def _skeleton(cond: Any) -> tuple[Any, bool]:
    """(a document every match contains, whether containment of it is the exact test)."""
    if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
        if "$eq" not in cond:
            return _NONE, False
        part, _ = _skeleton(cond["$eq"])
        only_eq = len(cond) == 1
        # $eq is deep equality; containment of an object or list is weaker than that.
        scalar = not isinstance(cond["$eq"], dict | list)
        exact = only_eq and scalar and part is not _NONE and _skeleton(cond["$eq"])[1]
        return part, exact
    if isinstance(cond, dict):
        doc: dict[str, Any] = {}
        exact = True
        for key, sub in cond.items():
            part, part_exact = _skeleton(sub) if _jsonb_safe(key) else (_NONE, False)
            if part is _NONE:
                exact = False
            else:
                doc[key] = part
                exact = exact and part_exact
        if not doc:
            return _NONE, False
        return doc, exact
    if isinstance(cond, list):
        parts = [p for p, _ in map(_skeleton, cond) if p is not _NONE]
        return parts, False  # jsonb arrays contain unordered subsets: never exact
    if isinstance(cond, int | float) and not isinstance(cond, bool):
        return cond, False  # jsonb says 1 = 1.0
    if isinstance(cond, str) and not _jsonb_safe(cond):
        return _NONE, False
    return cond, True  # str, bool, None


def _jsonb_safe(text: str) -> bool:
    """jsonb cannot hold NUL: such strings stay out of the SQL skeleton."""
    return "\x00" not in text
