"""Strict JSON comparison for the kit's assertions (its own, independent of any store)."""

from __future__ import annotations

from typing import Any


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values with their types: ``True`` is not ``1``, ``1`` is not ``1.0``."""
    if type(a) is not type(b):
        # Tuples are how Python spells arrays too; nothing else may differ in type.
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def assert_same_json(actual: Any, expected: Any) -> None:
    assert same_json(actual, expected), (
        f"not the same JSON:\n  got      {actual!r}\n  expected {expected!r}"
    )
