"""The interface the memory service codes against, and the types it returns.

Two implementations: :class:`~memlayer.cache.context_cache.ContextCache` (Redis,
cluster or embedded fakeredis) and :class:`~memlayer.cache.null.NullContextCache`
(cache disabled). The contract tests run one suite over the Redis flavours.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from memlayer.cache.stats import CacheStats
from memlayer.records import LoadResult, MemoryContext

__all__ = ["CachePort", "CacheStats", "Loader"]

Loader = Callable[[], Awaitable[MemoryContext]]


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
