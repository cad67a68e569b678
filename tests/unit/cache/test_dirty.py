"""Writes that missed Redis: remembered per user, bounded, invalidated before reads resume."""

from __future__ import annotations

import fakeredis
import pytest

from memlayer.cache import ContextCache, Loader
from memlayer.cache import keys as cache_keys
from memlayer.cache.codec import decode, encode_marker
from memlayer.cache.dirty import DirtyUsers
from memlayer.records import LoadSource, MemoryContext
from memlayer.settings import Settings


def test_keeps_the_highest_version_per_user() -> None:
    dirty = DirtyUsers(10)
    dirty.add(1, 3)
    dirty.add(1, 2)
    dirty.add(2, 5)

    assert sorted(dirty.snapshot()) == [(1, 3), (2, 5)]
    assert dirty.pending and 1 in dirty and 3 not in dirty


def test_discard_keeps_a_newer_write() -> None:
    dirty = DirtyUsers(10)
    dirty.add(1, 3)
    dirty.add(1, 4)  # a newer write while the marker for 3 was in flight

    dirty.discard(1, 3)
    assert dirty.snapshot() == [(1, 4)]
    dirty.discard(1, 4)
    assert not dirty.pending and len(dirty) == 0


def test_overflow_turns_into_a_pending_generation_bump() -> None:
    dirty = DirtyUsers(3)
    for user_id in range(4):
        dirty.add(user_id, 1)

    assert dirty.overflowed and dirty.pending
    assert len(dirty) == 0, "individual users are forgotten: the bump covers them"
    assert 99 in dirty, "every user is suspect until the bump"
    assert dirty.take_overflow()
    assert not dirty.pending
    dirty.mark_overflow()  # the bump failed: still pending
    assert dirty.pending and dirty.overflowed


def ctx(user_id: int, version: int) -> MemoryContext:
    return MemoryContext(user_id, version, preferences={"v": version})


def loader_of(context: MemoryContext) -> Loader:
    async def load(_floor: object = None) -> MemoryContext:
        return context

    return load


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def make_cache(server: fakeredis.FakeServer, **overrides: object) -> ContextCache:
    values: dict[str, object] = {
        "cache_key_prefix": "unit",
        "breaker_failure_threshold": 2,
        "breaker_cooldown_seconds": 3600.0,  # recovery only when the test asks
    }
    values.update(overrides)
    return ContextCache(fakeredis.FakeAsyncRedis(server=server), Settings(**values))


async def open_breaker(cache: ContextCache, server: fakeredis.FakeServer) -> None:
    server.connected = False
    for user_id in range(1000, 1005):
        result = await cache.load(user_id, loader_of(ctx(user_id, 0)))
        assert result.source is LoadSource.DATABASE
    assert cache.breaker_open


async def test_writes_during_an_outage_get_markers_before_the_breaker_closes(
    server: fakeredis.FakeServer,
) -> None:
    cache = make_cache(server)
    for user_id in (1, 2):
        await cache.write_through(ctx(user_id, 1))
    await open_breaker(cache, server)

    await cache.write_through(ctx(1, 2))  # committed in Postgres, Redis unreachable
    server.connected = True
    assert cache.breaker_open, "loads keep bypassing until recovery has run"
    assert await cache.recover()

    client = fakeredis.FakeAsyncRedis(server=server)
    assert await client.get(
        cache_keys.context_key("unit", 1, cache.known_generation)
    ) == encode_marker(2)
    assert decode(
        await client.get(cache_keys.context_key("unit", 2, cache.known_generation))
    ) == ctx(2, 1)
    result = await cache.load(1, loader_of(ctx(1, 2)))
    assert result.source is LoadSource.DATABASE and result.context.version == 2
    await cache.aclose()


async def test_dirty_overflow_bumps_the_generation_on_recovery(
    server: fakeredis.FakeServer,
) -> None:
    cache = make_cache(server, dirty_users_max=3)
    for user_id in range(1, 6):
        await cache.write_through(ctx(user_id, 1))
    await open_breaker(cache, server)
    for user_id in range(1, 6):
        await cache.write_through(ctx(user_id, 2))
    server.connected = True

    before = cache.known_generation
    assert await cache.recover()

    assert cache.generation == before + 1, "one turnover instead of a marker per user"
    for user_id in range(1, 6):
        result = await cache.load(user_id, loader_of(ctx(user_id, 2)))
        assert result.context.version == 2, "no read may return the pre-outage v1"
    await cache.aclose()


async def test_a_failed_write_through_bypasses_redis_for_that_user(
    server: fakeredis.FakeServer,
) -> None:
    cache = make_cache(server, breaker_failure_threshold=100)
    await cache.write_through(ctx(1, 1))
    await cache.write_through(ctx(2, 1))
    server.connected = False
    await cache.write_through(ctx(1, 2))  # error; the breaker stays closed
    server.connected = True
    assert not cache.breaker_open

    result = await cache.load(1, loader_of(ctx(1, 2)))
    other = await cache.load(2, loader_of(ctx(2, 1)))

    assert result.source is LoadSource.DATABASE and result.context.version == 2
    assert other.source is LoadSource.CACHE
    assert await cache.recover()  # flushes the dirty user now
    client = fakeredis.FakeAsyncRedis(server=server)
    assert await client.get(
        cache_keys.context_key("unit", 1, cache.known_generation)
    ) == encode_marker(2)
    await cache.aclose()
