"""Redis dies, hangs, or loses callers mid-command: chats go on, nothing stale is served.

Everything here runs against a redis-server and a proxy that the tests own. Latency
bounds are measured and generous (4x the Redis timeout: a shared 2-core box).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from memlayer.cache import ContextCache, Loader, make_redis_client
from memlayer.cache import keys as cache_keys
from memlayer.cache.codec import decode, encode_marker
from memlayer.records import LoadSource, MemoryContext
from memlayer.settings import Settings
from tests.support.contexts import CountingLoader, make_context
from tests.support.metrics import metric
from tests.support.tcp_proxy import ChaosProxy

TIMEOUT_MS = 100
LATENCY_BOUND_S = 4 * TIMEOUT_MS / 1000
THRESHOLD = 3


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def loader_of(context: MemoryContext) -> Loader:
    return CountingLoader(context)


CacheFactory = Callable[..., ContextCache]


@pytest.fixture
async def make_cache(proxy: ChaosProxy, own_redis_port: int) -> AsyncIterator[CacheFactory]:
    prefix = f"memlayer-test-{uuid.uuid4().hex}"
    made: list[tuple[ContextCache, Any]] = []

    def factory(clock: Callable[[], float] = time.monotonic, **overrides: Any) -> ContextCache:
        values: dict[str, Any] = {
            "redis_url": proxy.url,
            "cache_key_prefix": prefix,
            "redis_timeout_ms": TIMEOUT_MS,
            "redis_connect_timeout_ms": TIMEOUT_MS,
            "breaker_failure_threshold": THRESHOLD,
            "breaker_cooldown_seconds": 3600.0,  # recovery happens when a test says so
        }
        values.update(overrides)
        settings = Settings(**values)
        client = make_redis_client(settings)
        cache = ContextCache(client, settings, clock=clock)
        made.append((cache, client))
        return cache

    yield factory
    direct = Redis(port=own_redis_port)
    for cache, client in made:
        await cache.aclose()
        await client.aclose()
    async for key in direct.scan_iter(match=cache_keys.scan_pattern(prefix)):
        await direct.delete(key)
    await direct.aclose()


async def open_breaker(cache: ContextCache) -> None:
    for user_id in range(9000, 9000 + THRESHOLD):
        await cache.load(user_id, loader_of(make_context(user_id, 0)))
    assert cache.breaker_open


async def test_loads_keep_working_while_redis_is_dead(
    make_cache: CacheFactory, proxy: ChaosProxy
) -> None:
    cache = make_cache()
    users = range(1, 31)
    for user_id in users:
        await cache.write_through(make_context(user_id, 1))
    errors = metric("memlayer_cache_requests_total", result="error")
    bypasses = metric("memlayer_cache_requests_total", result="bypass")

    proxy.refuse()
    latencies = []
    for user_id in users:
        started = time.perf_counter()
        result = await cache.load(user_id, loader_of(make_context(user_id, 1)))
        latencies.append(time.perf_counter() - started)
        assert result.source is LoadSource.DATABASE
        assert result.context == make_context(user_id, 1)

    assert cache.breaker_open
    assert metric("memlayer_cache_requests_total", result="error") - errors == THRESHOLD
    assert metric("memlayer_cache_requests_total", result="bypass") - bypasses == (
        len(users) - THRESHOLD
    )
    assert max(latencies) < LATENCY_BOUND_S, latencies


async def test_database_fallback_is_single_flighted_per_user(
    make_cache: CacheFactory, proxy: ChaosProxy
) -> None:
    cache = make_cache()
    await cache.write_through(make_context(1, 1))
    proxy.refuse()
    await open_breaker(cache)
    loader = CountingLoader(make_context(77, 4))

    results = await asyncio.gather(*(cache.load(77, loader) for _ in range(300)))

    assert loader.calls == 1
    assert {r.source for r in results} == {LoadSource.DATABASE}


async def test_writes_during_an_outage_are_never_served_stale_afterwards(
    make_cache: CacheFactory, proxy: ChaosProxy, own_redis_port: int
) -> None:
    clock = FakeClock()
    cache = make_cache(clock=clock, breaker_cooldown_seconds=5.0)
    await cache.write_through(make_context(1, 1))
    deferred = metric("memlayer_cache_write_through_total", outcome="deferred")

    proxy.refuse()
    await open_breaker(cache)
    await cache.write_through(make_context(1, 2))  # committed; Redis still holds v1
    assert metric("memlayer_cache_write_through_total", outcome="deferred") == deferred + 1

    proxy.forward()  # Redis answers again, the breaker does not know yet
    during = await cache.load(1, loader_of(make_context(1, 2)))
    assert during.source is LoadSource.DATABASE and during.context.version == 2

    clock.now += 5.0  # cooldown over: the next call starts the recovery probe
    kick = await cache.load(1, loader_of(make_context(1, 2)))
    assert kick.context.version == 2
    assert await cache.recover()
    assert not cache.breaker_open

    direct = Redis(port=own_redis_port)
    key = cache_keys.context_key(cache.key_prefix, 1, cache.generation or 0)
    assert await direct.get(key) == encode_marker(2)
    await direct.aclose()
    after = await cache.load(1, loader_of(make_context(1, 2)))
    assert after.context.version == 2
    cached = await cache.load(1, loader_of(make_context(1, 1)))  # a stale loader is not asked
    assert cached.source is LoadSource.CACHE and cached.context.version == 2


async def test_a_hung_server_costs_at_most_the_timeout(
    make_cache: CacheFactory, proxy: ChaosProxy
) -> None:
    cache = make_cache()
    users = range(1, 21)
    for user_id in users:
        await cache.write_through(make_context(user_id, 1))

    proxy.stall()  # connections stay open, no reply ever comes
    latencies = []
    for user_id in users:
        started = time.perf_counter()
        result = await cache.load(user_id, loader_of(make_context(user_id, 1)))
        latencies.append(time.perf_counter() - started)
        assert result.source is LoadSource.DATABASE
    assert max(latencies) < LATENCY_BOUND_S, latencies
    assert cache.breaker_open

    # The held-back replies are released now; no connection may hand them to a new caller.
    proxy.forward()
    assert await cache.recover()
    contexts = {u: make_context(u, u + 1) for u in users}
    for context in contexts.values():
        await cache.write_through(context)
    results = await asyncio.gather(*(cache.load(u, loader_of(contexts[u])) for u in users))
    assert [r.context for r in results] == [contexts[u] for u in users]
    assert {r.source for r in results} == {LoadSource.CACHE}


async def test_cancelled_loads_leave_no_unread_reply_in_the_pool(
    make_cache: CacheFactory, own_redis_port: int
) -> None:
    cache = make_cache(redis_timeout_ms=2000, redis_connect_timeout_ms=2000)
    warm = range(1, 101)
    cold = range(101, 201)
    for user_id in warm:
        await cache.write_through(make_context(user_id, 1))

    rng = random.Random(20240501)
    tasks = [
        (asyncio.create_task(cache.load(u, loader_of(make_context(u, 1)))), rng.randrange(40))
        for u in (*warm, *cold)
    ]
    for step in range(40):  # cancel each load at its seeded scheduling point
        for task, cancel_at in tasks:
            if cancel_at == step:
                task.cancel()
        await asyncio.sleep(0)
    outcomes = await asyncio.gather(*(t for t, _ in tasks), return_exceptions=True)
    cancelled = sum(isinstance(o, asyncio.CancelledError) for o in outcomes)
    assert 0 < cancelled < len(outcomes)

    # Every later reply must belong to its own request.
    client = cache.client
    direct = Redis(port=own_redis_port)
    probe_keys = [f"{cache.key_prefix}:v1:probe:{i}" for i in range(200)]
    for i, key in enumerate(probe_keys):
        await direct.set(key, f"value-{i}")
    values = await asyncio.gather(*(client.get(k) for k in probe_keys))
    assert values == [f"value-{i}".encode() for i in range(200)]
    await direct.aclose()

    expected = {u: make_context(u, 1) for u in (*warm, *cold)}
    results = await asyncio.gather(*(cache.load(u, loader_of(expected[u])) for u in expected))
    assert [r.context for r in results] == list(expected.values())
    assert not cache.breaker_open
    for user_id in cold:
        raw = await client.get(
            cache_keys.context_key(cache.key_prefix, user_id, cache.generation or 0)
        )
        assert raw is not None and decode(raw) == expected[user_id]


async def test_ping_after_an_outage_is_not_failed_by_a_connection_redis_closed(
    make_cache: CacheFactory, proxy: ChaosProxy
) -> None:
    """Readiness must not flap once Redis is back: pooled connections it closed are replaced."""
    cache = make_cache()
    # Several pooled connections, all open, so the outage closes more than one.
    await asyncio.gather(*(cache.ping() for _ in range(4)))
    assert await cache.ping()

    proxy.refuse()
    assert not await cache.ping()
    proxy.forward()

    for _ in range(4):
        assert await cache.ping()


async def test_one_lost_ping_does_not_report_redis_down(
    make_cache: CacheFactory, proxy: ChaosProxy
) -> None:
    cache = make_cache()
    assert await cache.ping()
    proxy.cut_at(b"PING", deliver=False)
    assert await cache.ping(), "a probe whose connection was cut is asked again"
    assert proxy.cut_done.is_set()
