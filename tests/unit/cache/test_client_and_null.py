"""Client construction (short timeouts, no retries) and the disabled cache."""

from __future__ import annotations

import fakeredis
import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from memlayer.cache import NullContextCache, make_redis_client
from memlayer.records import LoadSource, MemoryContext
from memlayer.settings import MissingRedisUrl, Settings


def test_no_url_means_embedded_fakeredis() -> None:
    assert isinstance(make_redis_client(Settings(redis_url=None)), fakeredis.FakeAsyncRedis)


def test_no_url_with_a_real_database_is_refused_not_a_per_process_stand_in() -> None:
    settings = Settings(database_url="postgresql+asyncpg://db/memlayer", redis_url=None)
    with pytest.raises(MissingRedisUrl, match=r"MEMLAYER_REDIS_URL.*MEMLAYER_CACHE_ENABLED=false"):
        make_redis_client(settings)


async def test_redis_url_gets_short_timeouts_and_no_retries() -> None:
    client = make_redis_client(
        Settings(
            redis_url="redis://127.0.0.1:6399/2",
            redis_timeout_ms=40,
            redis_connect_timeout_ms=80,
            redis_max_connections=7,
        )
    )
    pool = client.connection_pool
    kwargs = pool.connection_kwargs

    assert isinstance(client, Redis) and isinstance(pool, BlockingConnectionPool)
    assert kwargs["socket_timeout"] == 0.04 and kwargs["socket_connect_timeout"] == 0.08
    assert kwargs["retry"].get_retries() == 0
    assert pool.max_connections == 7 and kwargs["db"] == 2
    await client.aclose()


async def test_cluster_url_builds_a_cluster_client() -> None:
    client = make_redis_client(Settings(redis_url="redis+cluster://127.0.0.1:7000"))

    assert isinstance(client, RedisCluster)
    assert client.retry.get_retries() == 0
    await client.aclose()


async def test_null_cache_always_loads() -> None:
    cache = NullContextCache()
    context = MemoryContext.empty(1, 3)

    async def loader(_floor: object = None) -> MemoryContext:
        return context

    result = await cache.load(1, loader)
    await cache.write_through(context)

    assert result.source is LoadSource.DATABASE and result.context is context
    assert not cache.breaker_open and (await cache.stats()).enabled is False
