"""Values every tier can carry: Postgres JSON(B), the msgpack cache, the API's JSON (orjson)
and the workflow's state.

Plain JSON is not enough. msgpack and orjson stop at 64-bit integers, Python's ``json``
happily writes ``NaN`` that Postgres refuses, orjson refuses nesting deeper than 254 and
Postgres cannot store a NUL character in text or JSONB. A value accepted here round-trips
through all of them unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
FLOAT_EXACT = 2.0**53  # every integer below this is exact as a float
MAX_DEPTH = 32


class UnportableValue(ValueError):
    """Why a value cannot be carried by every tier (never includes the value itself)."""


def check_portable(value: Any, *, exact_numbers: bool = True, depth: int = 0) -> None:
    """Raise :class:`UnportableValue` unless ``value`` is portable JSON.

    ``exact_numbers=False`` checks only what Postgres can store at all (for values that are
    stored but never served back through the other tiers, such as session metadata).

    Portable: ``None``, ``bool``, an int within int64, a finite float below 2**53 in
    magnitude, a string without
    NUL or lone surrogates, lists of portable values, and dicts with such string keys.
    """
    if depth > MAX_DEPTH:
        raise UnportableValue(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if exact_numbers and not INT_MIN <= value <= INT_MAX:
            raise UnportableValue("an integer outside the 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnportableValue("a non-finite number (NaN or infinity)")
        # Postgres keeps JSON numbers as numeric and writes 4.1e16 back as the integer
        # 41088112120738970, which is not the float it was: beyond 2**53 a float is not
        # exact, so such numbers must be sent as integers.
        if exact_numbers and not -FLOAT_EXACT < value < FLOAT_EXACT:
            raise UnportableValue("a fractional-type number beyond 2**53 (send an integer)")
        return
    if isinstance(value, str):
        _check_text(value)
        return
    if isinstance(value, list | tuple):
        for item in value:
            check_portable(item, exact_numbers=exact_numbers, depth=depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnportableValue("an object key that is not a string")
            _check_text(key)
            check_portable(item, exact_numbers=exact_numbers, depth=depth + 1)
        return
    raise UnportableValue(f"a {type(value).__name__}, which is not JSON")


def is_portable(value: Any) -> bool:
    try:
        check_portable(value)
    except UnportableValue:
        return False
    return True


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise UnportableValue("a NUL character (\\u0000), which Postgres cannot store")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise UnportableValue("a lone surrogate, which is not valid UTF-8") from exc
