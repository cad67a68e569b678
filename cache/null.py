"""The cache switched off: every load goes to the loader, writes do nothing.

Used when ``cache_enabled`` is false and by the benchmark's "cache disabled" run. Its
writes are never acknowledged to the outbox (``WriteThrough.DISABLED``): in a service
where other processes do cache, their drainers install the markers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from memlayer.cache.port import Loader, WriteThrough
from memlayer.cache.stats import CacheStats, RequestCounts
from memlayer.records import ANY_SOURCE, LoadResult, LoadSource, MemoryContext


class NullContextCache:
    __slots__ = ()

    async def load(self, user_id: int, loader: Loader) -> LoadResult:
        return LoadResult(await loader(ANY_SOURCE), LoadSource.DATABASE)

    async def write_through(self, context: MemoryContext) -> WriteThrough:
        return WriteThrough.DISABLED

    async def mark_outcome_unknown(self, user_id: int, version: int) -> None:
        return None

    async def invalidate(self, user_id: int) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def stats(self) -> CacheStats:
        return CacheStats(
            enabled=False,
            requests=RequestCounts(),
            keys=None,
            bytes_used=None,
            breaker_state="disabled",
            generation=None,
            dirty_users=0,
        )

    async def warm(self, user_ids: Iterable[int], loader_for: Callable[[int], Loader]) -> int:
        return 0

    @property
    def breaker_open(self) -> bool:
        return False

    async def aclose(self) -> None:
        return None
