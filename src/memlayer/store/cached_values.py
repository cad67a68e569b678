"""One namespace as the Redis tier holds it: the value, its bytes, and how long it is valid.

The cache unit is a namespace: its live items (newest first, up to a cap), whether any
namespace exists below it, at the *combined version* ``version + tree_version`` of its
``store_namespaces`` row, which strictly increases whenever its items change or a
namespace appears at or below it (``schema.py``). So one GET answers every get in the
namespace and every search of it that has no namespaces below it, with the exact filter
semantics the store applies to rows from Postgres (``filters.py``).

Bytes: ``cache.codec``'s header (schema byte, the combined version as 20 digits, a flag),
so the cache tier's Lua scripts compare versions without decoding; then a msgpack array
``[namespace text, has_descendants, over_cap, items]``, each item ``[key, value JSON text,
created_at, updated_at, ttl_minutes, expires_at]`` (timestamps as msgpack timestamps). An
*over-cap* value keeps the header and the flags but no items: readers of that namespace
go to Postgres without taking a lease each time, and a write still replaces it by version.

Expiry: a value is valid until the earliest ``expires_at`` among its items
(``valid_until``); after that it is a miss, replaced by a fresh load even at the same
version (the reader hands its bytes to the fill as the ones to replace). Refreshes only
push expiry later and sweeps only delete expired items, so a cached value never shows an
expired item and never hides a refreshed one for longer than it takes to reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import msgpack

from memlayer.cache.codec import frame, read_frame
from memlayer.cache.errors import CodecError
from memlayer.cache.keys import namespace_digest
from memlayer.store.repository import ItemRow, NamespaceRows

_DECODE_ERRORS = (
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    OverflowError,
    msgpack.UnpackException,
)


class ValueExpired(CodecError):
    """A cached value past its earliest item expiry: a miss, to be replaced by a load."""


@dataclass(frozen=True, slots=True)
class NamespaceValue:
    namespace: str
    version: int
    has_descendants: bool
    over_cap: bool
    items: tuple[ItemRow, ...]  # newest first (the plain-search order); () when over cap
    valid_until: datetime | None  # the earliest expiry among the items
    by_key: Mapping[str, ItemRow] = field(compare=False, repr=False)

    @classmethod
    def build(
        cls,
        namespace: str,
        version: int,
        has_descendants: bool,
        over_cap: bool,
        items: tuple[ItemRow, ...],
    ) -> NamespaceValue:
        expiries = [i.expires_at for i in items if i.expires_at is not None]
        return cls(
            namespace,
            version,
            has_descendants,
            over_cap,
            items,
            min(expiries) if expiries else None,
            {item.key: item for item in items},
        )

    @classmethod
    def from_rows(cls, rows: NamespaceRows) -> NamespaceValue:
        if rows.truncated:
            return cls.build(rows.namespace, rows.version, rows.has_descendants, True, ())
        return cls.build(rows.namespace, rows.version, rows.has_descendants, False, rows.items)

    @property
    def answers_gets(self) -> bool:
        return not self.over_cap

    @property
    def answers_searches(self) -> bool:
        """A search of this namespace as a prefix covers only its own items."""
        return not self.over_cap and not self.has_descendants

    def expired(self, now: datetime) -> bool:
        return self.valid_until is not None and now >= self.valid_until

    def without_items(self) -> NamespaceValue:
        """The same namespace and version, marked over the cap (too big to cache)."""
        return NamespaceValue.build(self.namespace, self.version, self.has_descendants, True, ())


def encode(value: NamespaceValue) -> bytes:
    """The cached bytes of ``value``. Raises :class:`CodecError` if it cannot be encoded."""
    try:
        payload: bytes = msgpack.packb(
            [
                value.namespace,
                value.has_descendants,
                value.over_cap,
                [
                    [i.key, i.value, i.created_at, i.updated_at, i.ttl_minutes, i.expires_at]
                    for i in value.items
                ],
            ],
            datetime=True,
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode namespace {value.namespace!r}: {exc}") from exc
    return frame(value.version, payload)


def decode(digest: str, raw: bytes) -> NamespaceValue | None:
    """The namespace in ``raw``, read under the key of ``digest``; None for a marker.

    Raises :class:`CodecError` for anything else, or for a value of another namespace.
    """
    version, payload = read_frame(raw)
    if payload is None:
        return None
    try:
        namespace, below, over_cap, items = msgpack.unpackb(
            payload, raw=False, strict_map_key=True, timestamp=3
        )
        if type(namespace) is not str:
            raise TypeError("mis-shaped namespace payload")
        rows = tuple(
            ItemRow(namespace, key, text, created, updated, ttl, expires)
            for key, text, created, updated, ttl, expires in items
        )
    except _DECODE_ERRORS as exc:
        raise CodecError(f"undecodable namespace value: {exc}") from exc
    if namespace_digest(namespace) != digest:
        raise CodecError("a value of another namespace under this namespace's key")
    return NamespaceValue.build(namespace, version, bool(below), bool(over_cap), rows)
