"""Building the one Redis client the app's lifespan owns.

URL forms (``MEMLAYER_REDIS_URL``):

* unset — embedded mode only (no database URL either): an in-process ``fakeredis``
  server with Lua. Good for a laptop and for tests; the cache lives and dies with the
  process. ``fakeredis`` comes with the ``embedded`` extra
  (``pip install 'memlayer[embedded]'``), imported only here. With a real database an
  unset URL is refused (``MissingRedisUrl``): each process would have its own cache.
* ``redis://[user:pass@]host:port/db`` or ``rediss://...`` — one Redis server.
* ``redis+cluster://host:port`` or ``rediss+cluster://host:port`` — Redis Cluster; the
  address is any one node, the rest are discovered.

Timeouts are short (``redis_timeout_ms``, ``redis_connect_timeout_ms``) and redis-py's
retries are disabled: its default Retry would repeat a timed-out read several times
with back-off, holding a planning step for far longer than the cache could ever save.
A failed Redis call falls back to Postgres instead.
"""

from __future__ import annotations

import logging
from typing import Any, TypeAlias

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from memlayer.settings import Settings, require_embedded_extra

log = logging.getLogger("memlayer.cache")

# The one client type the tier talks to: a Redis server, a Redis Cluster, or the embedded
# stand-in (fakeredis's FakeAsyncRedis is a redis.asyncio.Redis). Always built with
# decode_responses=False: values are bytes.
RedisClient: TypeAlias = Redis | RedisCluster

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_embedded_logged = False


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def make_redis_client(settings: Settings, *, embedded_scope: str | None = None) -> RedisClient:
    """One client for the process; the caller owns it and closes it with ``aclose()``.

    ``embedded_scope``: in embedded mode, clients given the same scope (one embedded
    database, say) share one in-process server, so several handles of one process see
    one cache; without it every client gets a server of its own.
    """
    url = settings.redis_url
    if url is None:
        settings.check_cache_configuration()
        return _embedded_client(embedded_scope)

    timeout = settings.redis_timeout_ms / 1000
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": settings.redis_connect_timeout_ms / 1000,
        "decode_responses": False,
        "health_check_interval": 0,
    }
    scheme, sep, rest = url.partition("://")
    if scheme in _CLUSTER_SCHEMES and sep:
        return RedisCluster.from_url(
            f"{_CLUSTER_SCHEMES[scheme]}://{rest}",
            max_connections=settings.redis_max_connections,  # per node
            retry=_no_retry(),
            **common,
        )
    # A blocking pool: a burst larger than the pool waits (at most the Redis timeout) for
    # a connection instead of failing with "Too many connections" and going to Postgres.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=timeout,
        retry=_no_retry(),
        **common,
    )
    return Redis.from_pool(pool)


_embedded_servers: dict[str, Any] = {}  # scope -> fakeredis.FakeServer, for the process


def _embedded_client(scope: str | None = None) -> Redis:
    require_embedded_extra(
        "fakeredis", "MEMLAYER_REDIS_URL is not set, so memlayer would use an in-process Redis"
    )
    import fakeredis  # the embedded extra; a Postgres + Redis deployment goes without

    global _embedded_logged
    if not _embedded_logged:
        log.info("cache: embedded mode (MEMLAYER_REDIS_URL unset): in-process fakeredis")
        _embedded_logged = True
    if scope is None:
        return fakeredis.FakeAsyncRedis(decode_responses=False)
    server = _embedded_servers.get(scope)
    if server is None:
        server = _embedded_servers[scope] = fakeredis.FakeServer()
    return fakeredis.FakeAsyncRedis(server=server, decode_responses=False)
