"""The cache tier's error hierarchy.

Redis failures never leave the tier (a load falls back to the loader, a write is
deferred), so these errors exist for the tier's own bookkeeping and for callers of
the codec; the memory service should not need to catch them.
"""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError


class CacheError(Exception):
    """Base class of every error raised by ``memlayer.cache``."""


class CodecError(CacheError):
    """A cached value cannot be decoded (corrupt, foreign, or another schema).

    The store treats it as a miss and replaces the value; it is never shown to a caller.
    """


class FloorUnavailable(CacheError):
    """The generation floor (Postgres) could not be read or raised.

    A turnover that cannot be persisted does not happen; until it does, the process
    reads nothing from Redis (it knows Redis may hold data older than Postgres).
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

# The ones of those that say "no answer in time" rather than "unreachable".
REDIS_TIMEOUTS: tuple[type[BaseException], ...] = (RedisTimeoutError, TimeoutError)


class LoopStalled(TimeoutError):
    """A Redis call timed out because this process's event loop stalled, not Redis.

    The deadline's timer ran far later than it was due: the reply may well have been
    waiting. The call still falls back, but the circuit breaker does not count it: a
    CPU-saturated process must not conclude that Redis is down and send every load to
    Postgres, which would only add to the overload.
    """

    def __init__(self, late_s: float) -> None:
        super().__init__(f"event loop stalled {late_s * 1000:.0f} ms past a Redis deadline")
        self.late_s = late_s


class SharedReadFailed(RedisError):
    """The shared GET this load joined failed; the load that issued it counts the failure.

    One Redis failure must count once for the circuit breaker, however many loads of
    the same user were waiting on that one read.
    """
