"""memlayer.cache — the Redis tier of the memory context (see DESIGN.md, invariants 3-7, 11).

Knows plain records only (``memlayer.records``), never ORM models or the memory service.
"""

from memlayer.cache.client import make_redis_client
from memlayer.cache.context_cache import ContextCache
from memlayer.cache.errors import CacheError, CodecError
from memlayer.cache.hooks import CacheHooks
from memlayer.cache.null import NullContextCache
from memlayer.cache.port import CachePort, CacheStats, Loader

__all__ = [
    "CacheError",
    "CacheHooks",
    "CachePort",
    "CacheStats",
    "CodecError",
    "ContextCache",
    "Loader",
    "NullContextCache",
    "make_redis_client",
]
