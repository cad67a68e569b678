"""Decoded values kept per key: a hit returning the same bytes as last time skips decoding.

Safe because the bytes are compared in full on every hit (the version is in them) and
decoded values are immutable. Bounded in entries and in value size; the oldest entry
goes first. A process-local shortcut of the *decoding*, never a source of values: what
it returns is always exactly what Redis returned this time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from memlayer.cache import metrics
from memlayer.cache.errors import CodecError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_VALUE_BYTES = 16 * 1024


class DecodedMemo(Generic[K, V]):
    __slots__ = ("_decode", "_entries", "_max_entries")

    def __init__(self, decode: Callable[[K, bytes], V | None], max_entries: int) -> None:
        self._decode = decode
        self._entries: dict[K, tuple[bytes, V]] = {}
        self._max_entries = max_entries

    def decode(self, key: K, raw: bytes) -> V | None:
        """The value in ``raw``, or None for an invalidation marker.

        Raises :class:`CodecError` (counted) for a value that must be replaced: corrupt,
        another schema, or not this key's.
        """
        entry = self._entries.get(key)
        if entry is not None and entry[0] == raw:
            return entry[1]
        try:
            value = self._decode(key, raw)
        except CodecError:
            metrics.CORRUPT.inc()
            raise
        if value is not None:
            self._remember(key, raw, value)
        return value

    def clear(self) -> None:
        """Forget every decoded value (the generation changed: they belong to the old one)."""
        self._entries.clear()

    def _remember(self, key: K, raw: bytes, value: V) -> None:
        entries = self._entries
        if self._max_entries == 0 or len(raw) > MAX_VALUE_BYTES:
            return
        if key not in entries and len(entries) >= self._max_entries:
            del entries[next(iter(entries))]  # oldest insertion first
        entries[key] = (raw, value)
