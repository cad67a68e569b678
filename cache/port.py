"""The interface the memory service codes against, and the types it returns.

Two implementations: :class:`~memlayer.cache.context_cache.ContextCache` (Redis,
cluster or embedded fakeredis) and :class:`~memlayer.cache.null.NullContextCache`
(cache disabled). The contract tests run one suite over the Redis flavours.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from memlayer.records import LoadResult, MemoryContext

Loader = Callable[[], Awaitable[MemoryContext]]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot for the ops page and ``memlayer cache stats``."""

    enabled: bool
    hits: int
    misses: int
    errors: int
    bypasses: int
    hit_ratio: float | None  # hits / (hits + misses + errors + bypasses); None before any load
    keys: int | None  # memlayer keys of this prefix (SCAN); None if Redis did not answer
    bytes_used: int | None  # MEMORY USAGE, extrapolated from a sample; None if unsupported
    breaker_state: str
    generation: int | None
    dirty_users: int


class CachePort(Protocol):
    async def load(self, user_id: int, loader: Loader) -> LoadResult: ...
    async def write_through(self, context: MemoryContext) -> None: ...
    async def invalidate(self, user_id: int) -> None: ...
    async def ping(self) -> bool: ...
    async def stats(self) -> CacheStats: ...
    async def warm(self, user_ids: Iterable[int], loader_for: Callable[[int], Loader]) -> int: ...
    @property
    def breaker_open(self) -> bool: ...
    async def aclose(self) -> None: ...
