"""The cache switched off: every load goes to the loader, writes do nothing.

Used when ``cache_enabled`` is false and by the benchmark's "cache disabled" run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from memlayer.cache.port import Loader
from memlayer.cache.stats import CacheStats, RequestCounts
from memlayer.records import LoadResult, LoadSource, MemoryContext


class NullContextCache:
    __slots__ = ()

    async def load(self, user_id: int, loader: Loader) -> LoadResult:
        return LoadResult(await loader(), LoadSource.DATABASE)

    async def write_through(self, context: MemoryContext) -> None:
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
