"""The interfaces the memory service codes against, and the types they return.

Two implementations of :class:`CachePort`: :class:`~memlayer.cache.context_cache.ContextCache`
(Redis, cluster or embedded fakeredis) and :class:`~memlayer.cache.null.NullContextCache`
(cache disabled). The contract tests run one suite over the Redis flavours.

:class:`GenerationFloor` and :class:`MarkerInstaller` are the seams between this tier and
Postgres, which it never imports: the memory tier implements the first (the
authoritative floor of the cache generation) and drives the second (the outbox drainer
installs versioned markers through it, one installer per key family).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from enum import Enum
from typing import Protocol

from memlayer.cache.stats import CacheStats
from memlayer.records import LoadResult, MemoryContext, ReadFloor

__all__ = [
    "CachePort",
    "CacheStats",
    "GenerationFloor",
    "Loader",
    "MarkerInstall",
    "MarkerInstaller",
    "WriteThrough",
]

# Loads a context from the database; the floor says what the result must at least be.
Loader = Callable[[ReadFloor], Awaitable[MemoryContext]]


class WriteThrough(Enum):
    """What a write-through after a commit achieved."""

    STORED = "stored"  # Redis holds this version now
    NEWER = "newer"  # Redis already held a newer version (refused as stale)
    DEFERRED = "deferred"  # Redis was not told (breaker open, error, epoch unsure)
    DISABLED = "disabled"  # this process has no cache tier

    @property
    def redis_holds_it(self) -> bool:
        """True when Redis is known to hold this version or newer: the outbox row may go."""
        return self is WriteThrough.STORED or self is WriteThrough.NEWER


class MarkerInstall(Enum):
    INSTALLED = "installed"  # every marker is in Redis (at the current generation)
    UNAVAILABLE = "unavailable"  # Redis could not be told (breaker open, error): retry later


class MarkerInstaller(Protocol):
    """Installs versioned invalidation markers for one key family (outbox drainer)."""

    async def install_markers(self, entries: Sequence[tuple[str, int]]) -> MarkerInstall:
        """``entries``: (entity id as stored in the outbox, version). Never raises Redis errors."""
        ...


class GenerationFloor(Protocol):
    """The authoritative lowest cache generation, kept outside Redis (Postgres).

    A turnover persists its generation here FIRST, so Redis coming back with older data
    (and an older epoch record) can never talk a process into a generation already used.
    Implementations raise :class:`~memlayer.cache.errors.FloorUnavailable` when the
    store cannot answer.
    """

    async def read(self) -> int: ...

    async def raise_to(self, generation: int) -> int:
        """Store ``max(stored, generation)``; return what is stored afterwards."""
        ...


class CachePort(Protocol):
    async def load(self, user_id: int, loader: Loader) -> LoadResult: ...
    async def write_through(self, context: MemoryContext) -> WriteThrough: ...
    async def mark_outcome_unknown(self, user_id: int, version: int) -> None: ...
    async def invalidate(self, user_id: int) -> None: ...
    async def ping(self) -> bool: ...
    async def stats(self) -> CacheStats: ...
    async def warm(self, user_ids: Iterable[int], loader_for: Callable[[int], Loader]) -> int: ...
    @property
    def breaker_open(self) -> bool: ...
    async def aclose(self) -> None: ...
