"""Database loads are told what they must at least see, so a lagging replica is caught.

The floor is the highest of: a marker's version found in Redis by the lease script, a
version this process acknowledged recently, and (read from the primary only) a write of
this process that Redis was not told about. The service turns a replica answer below
the floor into a primary read (tests/integration/coherence/test_replica.py).
"""

from __future__ import annotations

import fakeredis

from memlayer.cache import ContextCache
from memlayer.cache.keys import epoch_key
from memlayer.records import ANY_SOURCE, ReadFloor
from memlayer.settings import Settings
from tests.support.contexts import CountingLoader, make_context

PREFIX = "unit-floor"


def make_cache(server: fakeredis.FakeServer, **overrides: object) -> ContextCache:
    values: dict[str, object] = {"cache_key_prefix": PREFIX, "breaker_cooldown_seconds": 3600.0}
    values.update(overrides)
    return ContextCache(fakeredis.FakeAsyncRedis(server=server), Settings(**values))


async def test_a_cold_user_nobody_wrote_may_come_from_any_source() -> None:
    cache = make_cache(fakeredis.FakeServer())
    loader = CountingLoader(make_context(1, 3))
    await cache.load(1, loader)
    assert loader.floors == [ANY_SOURCE]
    await cache.aclose()


async def test_a_marker_in_redis_is_the_floor_of_the_fill() -> None:
    server = fakeredis.FakeServer()
    writer, reader = make_cache(server), make_cache(server, cache_recent_writes_max=0)
    await writer.write_through(make_context(1, 1))
    await writer.invalidate(1, 7)  # e.g. the outbox drainer, for another process's write

    loader = CountingLoader(make_context(1, 7))
    await reader.load(1, loader)

    assert loader.floors == [ReadFloor(7)]
    await writer.aclose()
    await reader.aclose()


async def test_a_write_this_process_acknowledged_is_the_floor_even_once_evicted() -> None:
    server = fakeredis.FakeServer()
    cache = make_cache(server)
    await cache.write_through(make_context(1, 4))
    client = fakeredis.FakeAsyncRedis(server=server)
    keys = [k async for k in client.scan_iter(match=f"{PREFIX}:*ctx")]
    await client.delete(*keys)  # evicted

    loader = CountingLoader(make_context(1, 4))
    await cache.load(1, loader)

    assert loader.floors == [ReadFloor(4)]
    await cache.aclose()


async def test_a_write_redis_was_not_told_about_is_read_from_the_primary() -> None:
    server = fakeredis.FakeServer()
    cache = make_cache(server, breaker_failure_threshold=100)
    await cache.write_through(make_context(1, 1))
    server.connected = False
    await cache.write_through(make_context(1, 2))  # committed; Redis unreachable
    server.connected = True

    loader = CountingLoader(make_context(1, 2))
    await cache.load(1, loader)

    assert loader.floors == [ReadFloor(2, primary=True)]
    assert await fakeredis.FakeAsyncRedis(server=server).exists(epoch_key(PREFIX))
    await cache.aclose()
