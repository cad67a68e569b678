"""Abuse limits on the expensive anonymous doors: failed logins, registrations, anonymous
chat starts.

Counters live in Redis (the ``limits`` library's moving windows), so a limit holds across
every API process; in embedded mode they live in the process (there is only one).

**Redis down: fail open.** A limiter that cannot reach Redis lets the request through and
counts it (``memlayer_rate_limit_checks_total{outcome="error"}``): Redis is optional at run
time (docs/architecture.md, invariant 7), and refusing every login because the cache tier is down
would turn a cache outage into a full outage. The limits come back with Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import limits
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import Counter
from redis.asyncio import BlockingConnectionPool, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from memlayer.settings import Settings

log = logging.getLogger(__name__)

RATE_LIMIT_CHECKS = Counter(
    "memlayer_rate_limit_checks_total",
    "Abuse-limit checks by limit and outcome: allowed, limited, or error (Redis "
    "unreachable: the request was let through).",
    ["limit", "outcome"],
)


class Limit(StrEnum):
    LOGIN_FAILURES = "login_failures"  # per account
    REGISTER = "register"  # per client IP
    ANONYMOUS_START = "anonymous_start"  # per client IP


_WHAT = {
    Limit.LOGIN_FAILURES: "too many failed logins for this account",
    Limit.REGISTER: "too many registrations from this address",
    Limit.ANONYMOUS_START: "too many anonymous chat sessions from this address",
}


class RateLimited(Exception):
    """Over a limit; ``retry_after`` is whole seconds until one more is allowed."""

    def __init__(self, limit: Limit, retry_after: int) -> None:
        super().__init__(f"{_WHAT[limit]}; retry in {retry_after} s")
        self.limit = limit
        self.retry_after = retry_after


def account_key(email: str) -> str:
    """The key of an account's counter: a digest, so Redis never holds an email."""
    return hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()[:32]


@dataclass
class AbuseLimiter:
    """Checks and counts the abuse limits; one per process, built in the lifespan."""

    storage: Storage
    items: dict[Limit, limits.RateLimitItem]
    pool: ConnectionPool | None = None

    def __post_init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(self.storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> AbuseLimiter:
        items = {
            Limit.LOGIN_FAILURES: settings.rate_limit_login_failures,
            Limit.REGISTER: settings.rate_limit_register,
            Limit.ANONYMOUS_START: settings.rate_limit_anonymous_start,
        }
        parsed = {limit: limits.parse(text) for limit, text in items.items() if text}
        prefix = f"{settings.cache_key_prefix}:limits"
        url = settings.redis_url
        if url is None:
            return cls(MemoryStorage(), parsed)
        # Not the hot path: login already costs ~20 ms of argon2, so the limiter can wait
        # longer than the cache's tens of milliseconds before it gives up (and fails open).
        timeout = settings.rate_limit_redis_timeout_ms / 1000
        options = {
            "socket_timeout": timeout,
            "socket_connect_timeout": settings.redis_connect_timeout_ms / 1000,
            "retry": Retry(NoBackoff(), 0),
        }
        scheme, _, rest = url.partition("://")
        if scheme.endswith("+cluster"):
            # limits annotates its pass-through options narrowly; redis-py takes these.
            cluster = RedisClusterStorage(
                f"async+{scheme}://{rest}",
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=prefix,
                **options,  # type: ignore[arg-type]
            )
            return cls(cluster, parsed)
        # A blocking pool: a burst of logins waits (at most the timeout) for a connection
        # instead of failing open with "Too many connections".
        pool = BlockingConnectionPool.from_url(
            url, max_connections=settings.redis_max_connections, timeout=timeout, **options
        )
        single = RedisStorage(
            "async+redis://",
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix=prefix,
            connection_pool=pool,  # type: ignore[arg-type]  # forwarded to redis-py as is
        )
        return cls(single, parsed, pool)

    async def check(self, limit: Limit, key: str) -> None:
        """Raise RateLimited if ``limit`` is used up for ``key`` (consumes nothing)."""
        item = self.items.get(limit)
        if item is None:
            return
        try:
            allowed = await self._limiter.test(item, limit.value, key)
            retry_after = 0 if allowed else await self._retry_after(item, limit, key)
        except (TimeoutError, StorageError, OSError) as exc:
            self._failed_open(limit, exc)
            return
        self._refuse_if(limit, allowed, retry_after)

    async def hit(self, limit: Limit, key: str) -> None:
        """Count one against ``limit``; raise RateLimited if that went over it."""
        item = self.items.get(limit)
        if item is None:
            return
        try:
            allowed = await self._limiter.hit(item, limit.value, key)
            retry_after = 0 if allowed else await self._retry_after(item, limit, key)
        except (TimeoutError, StorageError, OSError) as exc:
            self._failed_open(limit, exc)
            return
        self._refuse_if(limit, allowed, retry_after)

    async def aclose(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()
        elif isinstance(self.storage, RedisClusterStorage):
            # The cluster client belongs to the storage's bridge (untyped in limits).
            bridge: Any = self.storage.bridge
            await bridge.get_connection().aclose()

    async def _retry_after(self, item: limits.RateLimitItem, limit: Limit, key: str) -> int:
        stats = await self._limiter.get_window_stats(item, limit.value, key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    @staticmethod
    def _refuse_if(limit: Limit, allowed: bool, retry_after: int) -> None:
        RATE_LIMIT_CHECKS.labels(limit.value, "allowed" if allowed else "limited").inc()
        if not allowed:
            raise RateLimited(limit, retry_after)

    @staticmethod
    def _failed_open(limit: Limit, exc: BaseException) -> None:
        RATE_LIMIT_CHECKS.labels(limit.value, "error").inc()
        log.warning("rate limit %s unchecked (Redis: %s); let through", limit.value, exc)
