"""Namespaces: their validation, their text form in SQL, prefix ranges and match conditions.

A namespace is a tuple of labels. In SQL it is one text column holding the labels joined by
``"."``, a character no label may contain (LangGraph refuses it, and so do we for ops handed
straight to ``batch``), so the text form is unambiguous and the empty text is the root.

A search under prefix ``P`` covers ``P`` itself and every namespace whose text starts with
``P + "."``. Under a bytewise collation (``COLLATE "C"`` on Postgres, SQLite's default
``BINARY``) those texts are exactly the half-open range ``[P + ".", P + "/")`` ("/" is the
byte after "."), so prefixes match on whole labels and no LIKE pattern is ever built:
``%``, ``_`` and ``*`` in labels are plain characters.

Listing namespaces is narrowed in SQL by the literal part of each prefix condition and
finished here, in Python, where tuples sort label by label as ``InMemoryStore`` sorts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from langgraph.store.base import InvalidNamespaceError, ListNamespacesOp, MatchCondition

from memlayer.store.errors import InvalidOperation

SEPARATOR = "."
AFTER_SEPARATOR = chr(ord(SEPARATOR) + 1)
WILDCARD = "*"
RESERVED_ROOT = "langgraph"


def _check_label(label: object, namespace: Sequence[object]) -> None:
    if not isinstance(label, str):
        raise InvalidNamespaceError(
            f"namespace labels must be strings, got {type(label).__name__} in {namespace!r}"
        )
    if not label:
        raise InvalidNamespaceError(f"namespace labels cannot be empty: {namespace!r}")
    if SEPARATOR in label:
        raise InvalidNamespaceError(
            f"namespace labels cannot contain periods ('.'): {label!r} in {namespace!r}"
        )
    if "\x00" in label:
        raise InvalidNamespaceError(f"namespace labels cannot contain NUL: {namespace!r}")
    if not _is_unicode(label):
        raise InvalidNamespaceError(
            f"namespace labels must be valid Unicode (no lone surrogates): {namespace!r}"
        )


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def labels(namespace: object) -> tuple[str, ...]:
    """A namespace of any length (a read's), validated label by label."""
    if not isinstance(namespace, tuple | list):
        raise InvalidNamespaceError(f"a namespace is a tuple of strings, got {namespace!r}")
    for label in namespace:
        _check_label(label, namespace)
    return tuple(namespace)


def writable(namespace: object) -> tuple[str, ...]:
    """A namespace an item may be put in: not empty, and not under LangGraph's own root."""
    checked = labels(namespace)
    if not checked:
        raise InvalidNamespaceError("a namespace to write in cannot be empty")
    if checked[0] == RESERVED_ROOT:
        raise InvalidNamespaceError(f'the root label cannot be "langgraph": {checked!r}')
    return checked


def item_key(key: object) -> str:
    """An item key: any string Postgres can store (no NUL, valid Unicode)."""
    if not isinstance(key, str):
        raise InvalidOperation(f"an item key must be a string, got {type(key).__name__}")
    if "\x00" in key or not _is_unicode(key):
        raise InvalidOperation(f"an item key cannot hold NUL or lone surrogates: {key!r}")
    return key


def to_text(namespace: tuple[str, ...]) -> str:
    return SEPARATOR.join(namespace)


def from_text(text: str) -> tuple[str, ...]:
    return tuple(text.split(SEPARATOR)) if text else ()


def descendants_range(prefix_text: str) -> tuple[str, str]:
    """``[lo, hi)``: the texts of every namespace strictly below ``prefix_text``."""
    return prefix_text + SEPARATOR, prefix_text + AFTER_SEPARATOR


def ancestors(namespace: tuple[str, ...]) -> list[str]:
    """The texts of every proper ancestor, the root ``""`` first."""
    return [to_text(namespace[:depth]) for depth in range(len(namespace))]


def is_within(namespace: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    return namespace[: len(prefix)] == prefix


# --- listing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListingPlan:
    """A validated ``ListNamespacesOp`` and what SQL can narrow it by."""

    conditions: tuple[MatchCondition, ...]
    max_depth: int | None
    limit: int
    offset: int

    @property
    def literal_prefix(self) -> tuple[str, ...] | None:
        """The longest wildcard-free start every listed namespace must have (None: any)."""
        best: tuple[str, ...] | None = None
        for condition in self.conditions:
            if condition.match_type != "prefix":
                continue
            literal: list[str] = []
            for label in condition.path:
                if label == WILDCARD:
                    break
                literal.append(label)
            if literal and (best is None or len(literal) > len(best)):
                best = tuple(literal)
        return best

    @property
    def min_depth(self) -> int:
        return max((len(c.path) for c in self.conditions), default=0)

    def finish(self, namespaces: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
        """Filter, truncate to ``max_depth``, sort label by label, and page."""
        kept = [ns for ns in namespaces if all(_matches(c, ns) for c in self.conditions)]
        if self.max_depth is not None:
            kept = list({ns[: self.max_depth] for ns in kept})
        kept.sort()
        return kept[self.offset : self.offset + self.limit]


def plan_listing(op: ListNamespacesOp) -> ListingPlan:
    conditions = tuple(op.match_conditions or ())
    for condition in conditions:
        if condition.match_type not in ("prefix", "suffix"):
            raise InvalidOperation(f"unsupported match type {condition.match_type!r}")
        labels(condition.path)
    if op.max_depth is not None and op.max_depth < 0:
        raise InvalidOperation(f"max_depth cannot be negative, got {op.max_depth}")
    check_page(op.limit, op.offset)
    return ListingPlan(conditions, op.max_depth, op.limit, op.offset)


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    if not path:
        return True
    return all(want == WILDCARD or want == have for want, have in zip(path, part, strict=True))


def check_page(limit: int, offset: int) -> None:
    """Pages count items: non-negative integers, ``limit=0`` meaning nothing."""
    for name, number in (("limit", limit), ("offset", offset)):
        if isinstance(number, bool) or not isinstance(number, int):
            raise InvalidOperation(f"{name} must be an integer, got {number!r}")
        if number < 0:
            raise InvalidOperation(f"{name} cannot be negative, got {number}")
