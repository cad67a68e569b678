"""The cache contract: one suite, run against fakeredis, a real Redis and a Redis Cluster.

Races are staged with asyncio.Event through CacheHooks, never with sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

from memlayer.cache import CacheHooks
from memlayer.cache.codec import SCHEMA, decode, encode, encode_marker, value_version
from memlayer.records import LoadSource, MemoryContext
from tests.contract.cache_contract_support import Backend
from tests.support.contexts import CountingLoader, make_context
from tests.support.metrics import metric


def count_commands(client: Any) -> list[str]:
    """Record every command the client sends (one entry per round trip)."""
    sent: list[str] = []
    original = client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]).upper())
        return await original(*args, **kwargs)

    client.execute_command = counting
    return sent


async def test_miss_loads_once_then_fills(backend: Backend) -> None:
    cache = backend.cache()
    loader = CountingLoader(make_context(1, 3))

    result = await cache.load(1, loader)

    assert result.source is LoadSource.DATABASE
    assert result.context == loader.context
    assert loader.calls == 1
    raw = await backend.raw(1, cache)
    assert raw is not None and decode(raw) == loader.context


async def test_hit_is_served_from_redis_in_one_round_trip(backend: Backend) -> None:
    cache = backend.cache()
    loader = CountingLoader(make_context(2, 5))
    await cache.load(2, loader)
    sent = count_commands(cache.client)
    hits_before = metric("memlayer_cache_requests_total", result="hit")

    result = await cache.load(2, loader)

    assert result.source is LoadSource.CACHE
    assert result.context == loader.context
    assert loader.calls == 1
    assert sent == ["GET"]
    assert metric("memlayer_cache_requests_total", result="hit") == hits_before + 1


async def test_codec_round_trips_through_redis(backend: Backend) -> None:
    cache = backend.cache()
    context = make_context(3, 7, memories=5)
    await cache.write_through(context)

    result = await cache.load(3, CountingLoader(make_context(3, 1)))

    assert result.source is LoadSource.CACHE
    assert result.context == context
    assert result.context.memories[0].created_at == context.memories[0].created_at
    assert result.context.memories[0].summary.startswith("v7 대화 요약")


async def test_every_key_has_a_jittered_ttl(backend: Backend) -> None:
    ttl_s, jitter = 600, 0.1
    cache = backend.cache(cache_ttl_seconds=ttl_s, cache_ttl_jitter=jitter)
    for user_id in range(100, 140):
        await cache.write_through(make_context(user_id, 1))

    client = backend.clients[0]
    pttls = [await client.pttl(backend.key(u, cache)) for u in range(100, 140)]

    low, high = ttl_s * 1000 * (1 - jitter) - 5000, ttl_s * 1000 * (1 + jitter)
    assert all(low <= p <= high for p in pttls), pttls
    assert len(set(pttls)) > 1, "keys written together must not expire together"


async def test_empty_context_is_cached_for_new_users(backend: Backend) -> None:
    cache = backend.cache()
    loader = CountingLoader(MemoryContext.empty(4, 0))

    first = await cache.load(4, loader)
    second = await cache.load(4, loader)

    assert first.source is LoadSource.DATABASE
    assert second.source is LoadSource.CACHE
    assert second.context == MemoryContext.empty(4, 0)
    assert loader.calls == 1


async def test_write_through_is_set_if_newer(backend: Backend) -> None:
    cache = backend.cache()
    stale_before = metric("memlayer_cache_write_through_total", outcome="stale_refused")

    await cache.write_through(make_context(5, 2))
    await cache.write_through(make_context(5, 1))  # older: refused
    assert value_version(await backend.raw(5, cache)) == 2
    assert metric("memlayer_cache_write_through_total", outcome="stale_refused") == (
        stale_before + 1
    )

    await cache.write_through(make_context(5, 3))  # newer: accepted
    assert decode(await backend.raw(5, cache)) == make_context(5, 3)


async def test_marker_refuses_older_fills_and_accepts_its_own_version(backend: Backend) -> None:
    cache = backend.cache()
    await cache.write_through(make_context(6, 4))
    await cache.invalidate(6, version=5)
    assert await backend.raw(6, cache) == encode_marker(5)

    older = await cache.load(6, CountingLoader(make_context(6, 4)))  # a lagging replica
    assert older.source is LoadSource.DATABASE
    assert await backend.raw(6, cache) == encode_marker(5), "fill below the marker refused"

    same = await cache.load(6, CountingLoader(make_context(6, 5)))
    assert same.source is LoadSource.DATABASE
    assert decode(await backend.raw(6, cache)) == make_context(6, 5)
    hit = await cache.load(6, CountingLoader(make_context(6, 0)))
    assert hit.source is LoadSource.CACHE and hit.context.version == 5


async def test_corrupt_value_is_a_counted_miss_and_is_replaced(backend: Backend) -> None:
    cache = backend.cache()
    await cache.load(7, CountingLoader(make_context(7, 1)))  # learn the generation
    client = backend.clients[0]
    garbage = [
        b"\xff not msgpack at all",
        b"\x02" + encode(make_context(7, 9))[1:],  # another schema version
        SCHEMA + b"%020d" % 9 + b"C" + b"\xc1\xc1 truncated",  # good header, bad payload
        encode(make_context(8, 9)),  # a foreign user's value under this key
    ]
    for raw in garbage:
        await client.set(backend.key(7, cache), raw)
        corrupt_before = metric("memlayer_cache_corrupt_total")

        result = await cache.load(7, CountingLoader(make_context(7, 2)))

        assert result.source is LoadSource.DATABASE
        assert result.context == make_context(7, 2)
        assert metric("memlayer_cache_corrupt_total") >= corrupt_before + 1
        assert decode(await backend.raw(7, cache)) == make_context(7, 2), raw


async def test_slow_fill_never_overwrites_newer_write(backend: Backend) -> None:
    reached, release = asyncio.Event(), asyncio.Event()

    async def hold(user_id: int, context: MemoryContext) -> None:
        reached.set()
        await release.wait()

    reader = backend.cache(hooks=CacheHooks(before_fill=hold))
    writer = backend.cache()
    stale_before = metric("memlayer_cache_fills_total", outcome="stale_refused")

    slow = asyncio.create_task(reader.load(9, CountingLoader(make_context(9, 1))))
    await reached.wait()  # the reader has loaded v1 and is about to install it
    await writer.write_through(make_context(9, 2))
    release.set()
    result = await slow

    assert result.source is LoadSource.DATABASE and result.context.version == 1
    assert decode(await backend.raw(9, writer)) == make_context(9, 2)
    assert metric("memlayer_cache_fills_total", outcome="stale_refused") == stale_before + 1
    again = await reader.load(9, CountingLoader(make_context(9, 1)))
    assert again.source is LoadSource.CACHE and again.context.version == 2


async def test_invalidate_is_safe_against_an_older_in_flight_fill(backend: Backend) -> None:
    reached, release = asyncio.Event(), asyncio.Event()

    async def hold(user_id: int, context: MemoryContext) -> None:
        reached.set()
        await release.wait()

    reader = backend.cache(hooks=CacheHooks(before_fill=hold))
    ops = backend.cache()

    slow = asyncio.create_task(reader.load(10, CountingLoader(make_context(10, 1))))
    await reached.wait()
    await ops.write_through(make_context(10, 2))
    await ops.invalidate(10)  # a bare DEL here would let the v1 fill back in
    release.set()
    await slow

    raw = await backend.raw(10, ops)
    assert raw == encode_marker(2), "the old fill must not undo the invalidation"
    reloaded = await ops.load(10, CountingLoader(make_context(10, 2)))
    assert reloaded.source is LoadSource.DATABASE
    assert decode(await backend.raw(10, ops)) == make_context(10, 2)


async def test_concurrent_cold_loads_query_the_database_once(backend: Backend) -> None:
    cache = backend.cache()
    loader = CountingLoader(make_context(11, 1))

    results = await asyncio.gather(*(cache.load(11, loader) for _ in range(500)))

    assert loader.calls == 1
    assert all(r.context == loader.context for r in results)


async def test_two_processes_fill_a_cold_user_once_through_the_lease(backend: Backend) -> None:
    first, second = backend.cache(), backend.cache()
    loader = CountingLoader(make_context(12, 1))

    results = await asyncio.gather(
        *(first.load(12, loader) for _ in range(250)),
        *(second.load(12, loader) for _ in range(250)),
    )

    assert loader.calls == 1, "the Redis lease must stop the second process's load"
    assert all(r.context == loader.context for r in results)
    assert {r.source for r in results} == {LoadSource.DATABASE, LoadSource.CACHE}


async def test_loader_errors_propagate_and_release_the_lease(backend: Backend) -> None:
    cache = backend.cache()

    class Boom(Exception):
        pass

    async def failing(_floor: object = None) -> MemoryContext:
        raise Boom

    results = await asyncio.gather(
        *(cache.load(13, failing) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, Boom) for r in results)
    # The lease is handed back, so the next load fills at once instead of waiting it out.
    other = backend.cache(cache_fill_wait_ms=0)
    loader = CountingLoader(make_context(13, 1))
    result = await other.load(13, loader)
    assert result.source is LoadSource.DATABASE
    assert decode(await backend.raw(13, other)) == make_context(13, 1)


async def test_stats_count_keys_by_scan(backend: Backend) -> None:
    cache = backend.cache()
    for user_id in range(20, 25):
        await cache.write_through(make_context(user_id, 1))

    stats = await cache.stats()

    assert stats.keys == 6  # five contexts and the epoch record
    assert stats.breaker_state == "closed"
    assert stats.generation == 1  # the first process of a fresh Redis starts generation 1
    if backend.name != "fakeredis":  # fakeredis has no MEMORY USAGE
        assert stats.bytes_used is not None and stats.bytes_used > 0
