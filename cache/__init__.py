"""memlayer.cache — the Redis tier of the memory context (see DESIGN.md, invariants 3-7, 11).

Knows plain records only (``memlayer.records``), never ORM models or the memory service.
Module map: ``context_cache`` composes the tier; ``shared_read`` (one GET per user at a
time), ``memo`` (decoded values), ``fill`` (lease/fill/wait), ``recovery`` (generation
refresh, dirty flush, breaker probe) and ``state`` (where that state changes) are its
mechanisms; ``store``/``scripts``/``keys``/``codec`` talk to Redis; ``stats`` holds the
hit ratio.
"""

from memlayer.cache.client import RedisClient, make_redis_client
from memlayer.cache.context_cache import ContextCache
from memlayer.cache.errors import CacheError, CodecError
from memlayer.cache.hooks import CacheHooks
from memlayer.cache.null import NullContextCache
from memlayer.cache.port import CachePort, Loader
from memlayer.cache.stats import CacheStats, RequestCounts

__all__ = [
    "CacheError",
    "CacheHooks",
    "CachePort",
    "CacheStats",
    "CodecError",
    "ContextCache",
    "Loader",
    "NullContextCache",
    "RedisClient",
    "RequestCounts",
    "make_redis_client",
]
