"""memlayer.cache — the Redis tier of the memory context.

See docs/architecture.md, invariants 3-7 and 11.

Knows plain records only (``memlayer.records``), never ORM models or the memory service.
Module map: ``context_cache`` composes the tier; ``near`` (decoded values: the memo, and the
near-cache that serves hits from process memory once ``near_tier`` attached its
``invalidation`` link; ``near_recheck``, ``lag_probe``), ``shared_read`` (one GET per user
at a time), ``fill`` (lease/fill/wait), ``recovery`` (generation refresh, dirty flush,
breaker probe) and ``state`` (where that state changes) are its mechanisms; ``epoch``
notices Redis losing data and turns the cache over; ``recent`` remembers acknowledged
versions; ``store``/``scripts``/``keys``/``codec`` talk to Redis; ``stats`` holds the hit
ratio; ``port`` the seams to the memory tier (loaders, the generation floor, marker
installers for the outbox). Other key families on the same Redis (the LangGraph store's
namespaces) use the same protocol: ``tier`` (the process's breaker, generation and
recovery, from ``ContextCache.tier``), ``family_state`` (their own dirty keys),
``family_store`` (their round trips, batched), ``fill.BatchFillProtocol`` and ``memo``
(their decoded values).
"""

from memlayer.cache.client import RedisClient, make_redis_client
from memlayer.cache.context_cache import CachedVersion, ContextCache
from memlayer.cache.errors import CacheError, CodecError, FloorUnavailable
from memlayer.cache.hooks import CacheHooks
from memlayer.cache.null import NullContextCache
from memlayer.cache.port import (
    CachePort,
    GenerationFloor,
    Loader,
    MarkerInstall,
    MarkerInstaller,
    WriteThrough,
)
from memlayer.cache.stats import CacheStats, RequestCounts

__all__ = [
    "CacheError",
    "CacheHooks",
    "CachePort",
    "CacheStats",
    "CachedVersion",
    "CodecError",
    "ContextCache",
    "FloorUnavailable",
    "GenerationFloor",
    "Loader",
    "MarkerInstall",
    "MarkerInstaller",
    "NullContextCache",
    "RedisClient",
    "RequestCounts",
    "WriteThrough",
    "make_redis_client",
]
