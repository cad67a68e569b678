"""The cache tier's error hierarchy.

Redis failures never leave the tier (a load falls back to the loader, a write is
deferred), so these errors exist for the tier's own bookkeeping and for callers of
the codec; the memory service should not need to catch them.
"""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError


class CacheError(Exception):
    """Base class of every error raised by ``memlayer.cache``."""


class CodecError(CacheError):
    """A cached value cannot be decoded (corrupt, foreign, or another schema).

    The store treats it as a miss and replaces the value; it is never shown to a caller.
    """


# What "Redis did not answer properly" looks like from redis-py and asyncio. Listed
# explicitly so programming errors (TypeError, ...) still surface instead of being
# mistaken for an outage.
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    OSError,
    asyncio.TimeoutError,
    TimeoutError,
)
