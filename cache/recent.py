"""Versions this process acknowledged recently, per key, bounded.

A read replica may lag: its answer for a key this process just wrote may be older than
what the client was told is saved. Remembering the version of each acknowledged write
(for the most recently written keys only) lets a fill discard such an answer and read
the primary instead (docs/coherence.md, "Read replica"). The oldest key goes first.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class RecentVersions(Generic[K]):
    __slots__ = ("_max", "_versions")

    def __init__(self, max_keys: int) -> None:
        self._max = max_keys
        self._versions: dict[K, int] = {}

    def __len__(self) -> int:
        return len(self._versions)

    def note(self, key: K, version: int) -> None:
        """Remember ``version`` for ``key`` (the highest one wins), as the newest key."""
        if self._max == 0:
            return
        versions = self._versions
        versions[key] = max(versions.pop(key, 0), version)
        if len(versions) > self._max:
            del versions[next(iter(versions))]

    def get(self, key: K) -> int:
        """The highest version remembered for ``key``; 0 when none is."""
        return self._versions.get(key, 0)
