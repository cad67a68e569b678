"""Item values as strict JSON: what is accepted, and the exact text that is stored.

The store keeps the JSON text of each value verbatim (a ``text`` column, not ``jsonb``), so
what comes back is what went in: ``true`` stays a boolean, ``1`` an integer, ``1.0`` a float
(``jsonb`` would print a float like ``1e16`` back as the integer ``10000000000000000``), and
integers of any size stay exact. Decoding uses the standard library because orjson turns
integers beyond 64 bits into floats.

Accepted: dicts with string keys (any ``Mapping``), lists and tuples (tuples come back as
lists), strings, booleans, ``None``, integers, and finite floats. Refused with
``InvalidValue``: NaN and infinities (not JSON), non-string keys (``json.dumps`` would
silently turn ``1`` into ``"1"``), strings with lone surrogates (not Unicode; Postgres cannot
store them), and anything else. NUL characters are fine: the text holds them escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from memlayer.store.errors import InvalidValue

# How a NUL inside a JSON string is written in the stored text. Postgres cannot cast such
# text to jsonb, so SQL that casts values checks for this first (see filters.py).
NUL_ESCAPE = "\\u0000"


def encode(value: Mapping[str, Any]) -> str:
    """The stored JSON text of an item value; raises ``InvalidValue`` if it is not JSON."""
    if not isinstance(value, Mapping):
        raise InvalidValue(f"an item value must be a mapping, got {type(value).__name__}")
    plain = _plain(value, "value")
    return json.dumps(plain, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def decode(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value


def plain(value: Any, where: str = "value") -> Any:
    """A deep copy made of dicts, lists and JSON scalars only (validated)."""
    return _plain(value, where)


def _plain(value: Any, where: str) -> Any:
    # bool before int: True is an int to Python, a boolean to JSON.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(f"{where} is {value!r}, which JSON cannot represent")
        return float(value)
    if isinstance(value, str):
        _check_text(value, where)
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidValue(
                    f"{where} has the key {key!r} ({type(key).__name__}); JSON keys are strings"
                )
            _check_text(key, where)
            out[str(key)] = _plain(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise InvalidValue(f"{where} is a {type(value).__name__}, which is not a JSON value")


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"{where} holds a lone surrogate: not valid Unicode") from None
