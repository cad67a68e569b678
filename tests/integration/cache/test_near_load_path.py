"""The near-cache in the load path, on real Redis: served without a round trip, never stale.

Each test has a key prefix of its own on the shared Redis; restarts and partitions happen
only to a redis-server and proxies these tests start. Where a test needs the near-cache to
serve without any invalidation ever arriving, it tells the near-cache its link is up
(``cache.near.link_established()``, the call the link itself makes): then nothing but the
process's own bookkeeping stands between it and a stale read.
"""

from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from memlayer.cache import ContextCache, WriteThrough, keys, make_redis_client
from memlayer.cache.codec import encode
from memlayer.cache.keys import CONTEXT_FAMILY
from memlayer.cache.near import DropReason, NearCache
from memlayer.cache.near_tier import NearTier
from memlayer.records import LoadSource, MemoryContext
from memlayer.settings import Settings
from tests.support.contexts import CountingLoader, make_context
from tests.support.gated_redis import GatedRedis
from tests.support.metrics import metric
from tests.support.near_link import Recorder
from tests.support.redis_server import RedisServer
from tests.support.services import base_redis_url
from tests.support.tcp_proxy import ChaosProxy

WAIT_S = 10.0  # generous: a shared 2-core machine


def near_settings(prefix: str, url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": url or base_redis_url(),
        "cache_key_prefix": prefix,
        "near_cache_link_check_ms": 50,
        "near_cache_link_timeout_ms": 200,
        "near_cache_reconnect_initial_ms": 10,
        "near_cache_reconnect_max_ms": 100,
        "near_cache_lag_probe_ms": 0,
        "near_cache_recheck_fraction": 0.0,
        "cache_epoch_check_ms": 200,
    }
    values.update(overrides)
    return Settings(**values)


class Rig:
    """Caches (and their links) of one test, closed in reverse at the end."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._closers: list[Callable[[], Any]] = []

    def cache(self, settings: Settings, client: Any = None) -> ContextCache:
        client = client if client is not None else make_redis_client(settings)
        cache = ContextCache(client, settings)
        self._closers.append(client.aclose)
        self._closers.append(cache.aclose)
        return cache

    async def tier(
        self, cache: ContextCache, settings: Settings, url: str | None = None
    ) -> NearTier:
        tier = NearTier.start(cache, settings, url=url)
        self._closers.append(tier.aclose)
        await asyncio.wait_for(tier.link.wait_established(), WAIT_S)
        # The first epoch check of a fresh prefix writes the epoch record, whose news would
        # drop the near-cache mid-test: have it written, and heard, before the test starts.
        await cache.check_epoch()
        await tier.link.barrier()
        return tier

    async def aclose(self) -> None:
        for close in reversed(self._closers):
            await close()


@pytest.fixture
def prefix() -> str:
    return f"memlayer-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def rig(prefix: str) -> AsyncIterator[Rig]:
    made = Rig(prefix)
    yield made
    await made.aclose()
    data = Redis.from_url(base_redis_url())
    async for key in data.scan_iter(match=keys.scan_pattern(prefix)):
        await data.delete(key)
    await data.aclose()


@pytest.fixture
async def data() -> AsyncIterator[Redis]:
    client = Redis.from_url(base_redis_url())
    yield client
    await client.aclose()


def near_of(cache: ContextCache) -> NearCache[MemoryContext]:
    near = cache.near
    assert near is not None
    return near


async def warm(cache: ContextCache, context: MemoryContext, tier: NearTier | None = None) -> None:
    """Written through, then read once from Redis: the next load is a near hit.

    With a link, the write's own invalidation comes back to this process too: it is heard
    (a barrier) before the read, or it would void the read's ticket.
    """
    assert await cache.write_through(context) is WriteThrough.STORED
    if tier is not None:
        await tier.link.barrier()
    assert context.user_id is not None
    loaded = await cache.load(context.user_id, CountingLoader(context))
    assert (loaded.source, loaded.context.version) == (LoadSource.CACHE, context.version)


# ----------------------------------------------------------------------- serving


async def test_a_warm_load_is_served_from_process_memory_without_a_round_trip(
    rig: Rig, prefix: str
) -> None:
    settings = near_settings(prefix)
    client = GatedRedis(Redis.from_url(base_redis_url()))
    cache = rig.cache(settings, client)
    await rig.tier(cache, settings)
    context = make_context(1, version=3)
    loader = CountingLoader(context)

    first = await cache.load(1, loader)  # a miss: filled from the loader
    second = await cache.load(1, loader)  # Redis: settled into the near-cache
    gets = client.gets
    third = await cache.load(1, loader)

    assert [r.source for r in (first, second, third)] == [
        LoadSource.DATABASE,
        LoadSource.CACHE,
        LoadSource.NEAR,
    ]
    assert third.context == context and loader.calls == 1
    assert client.gets == gets  # no GET for the near hit


async def test_the_near_hit_keeps_the_encoding_a_reader_made_of_it(rig: Rig, prefix: str) -> None:
    settings = near_settings(prefix)
    cache = rig.cache(settings)
    tier = await rig.tier(cache, settings)
    await warm(cache, make_context(2, version=1), tier)
    near = near_of(cache)
    before = near.bytes_used
    encodes: list[int] = []

    def encode_json(result: Any) -> bytes:
        encodes.append(1)
        return b'{"version": %d}' % result.context.version

    hits = [await cache.load(2, CountingLoader(make_context(2, 1))) for _ in range(3)]

    assert {h.source for h in hits} == {LoadSource.NEAR}
    assert [h.encoded(encode_json) for h in hits] == [b'{"version": 1}'] * 3
    assert len(encodes) == 1  # made once, kept with the entry
    assert near.bytes_used == before + len(b'{"version": 1}')  # and counted in its size


# ------------------------------------------------------------- read your writes


@pytest.mark.parametrize("redis_answers", [True, False], ids=["stored", "deferred"])
async def test_a_process_never_serves_its_pre_write_value_after_acknowledging_a_write(
    rig: Rig, prefix: str, own_redis_port: int, redis_answers: bool
) -> None:
    # No link at all: the near-cache is told it may serve, and no invalidation will ever
    # come. What keeps the old value out is this process's own write path alone.
    proxy = await ChaosProxy(own_redis_port).start()
    try:
        # The breaker stays closed: its opening would drop the near-cache by itself.
        settings = near_settings(
            prefix, proxy.url, redis_timeout_ms=100, breaker_failure_threshold=100
        )
        cache = rig.cache(settings)
        near_of(cache).link_established()
        old, new = make_context(7, version=1), make_context(7, version=2)
        await warm(cache, old)
        assert (await cache.load(7, CountingLoader(old))).source is LoadSource.NEAR
        if not redis_answers:
            proxy.refuse()  # the write commits in Postgres; Redis never hears of it

        outcome = await cache.write_through(new)  # then the writer acknowledges
        loaded = await cache.load(7, CountingLoader(new))

        expected = WriteThrough.STORED if redis_answers else WriteThrough.DEFERRED
        assert outcome is expected
        assert loaded.context.version == 2
        assert loaded.source is not LoadSource.NEAR
    finally:
        await proxy.aclose()


async def test_a_read_that_raced_with_a_write_elsewhere_is_not_served_from_memory(
    rig: Rig, prefix: str, data: Redis
) -> None:
    settings = near_settings(prefix)
    client = GatedRedis(Redis.from_url(base_redis_url()))
    cache = rig.cache(settings, client)
    await warm(cache, make_context(5, version=1))  # in Redis, not yet served from memory
    tier = await rig.tier(cache, settings)
    raced_before = metric("memlayer_near_cache_fills_total", outcome="raced")
    generation = cache.generation
    assert generation is not None

    # A load reads v1 from Redis; its reply is held before the near-cache sees it.
    client.hold = asyncio.Event()
    reader = asyncio.create_task(cache.load(5, CountingLoader(make_context(5, 1))))
    await asyncio.wait_for(client.answered.wait(), WAIT_S)
    # Meanwhile another process writes v2, and its invalidation reaches this one.
    await data.set(keys.context_key(prefix, 5, generation), encode(make_context(5, version=2)))
    await tier.link.barrier()
    client.hold.set()
    raced = await reader

    assert (raced.source, raced.context.version) == (LoadSource.CACHE, 1)  # began before
    assert metric("memlayer_near_cache_fills_total", outcome="raced") == raced_before + 1
    later = await cache.load(5, CountingLoader(make_context(5, 2)))
    assert (later.source, later.context.version) == (LoadSource.CACHE, 2)  # not v1 from memory
    again = await cache.load(5, CountingLoader(make_context(5, 2)))
    assert (again.source, again.context.version) == (LoadSource.NEAR, 2)


async def test_a_write_in_another_process_evicts_the_entry_here(
    rig: Rig, prefix: str, data: Redis
) -> None:
    settings = near_settings(prefix)
    cache = rig.cache(settings)
    tier = await rig.tier(cache, settings)
    other = rig.cache(settings)  # another process's cache tier, on its own client
    await warm(cache, make_context(6, version=1), tier)
    assert (await cache.load(6, CountingLoader(make_context(6, 1)))).source is LoadSource.NEAR

    assert await other.write_through(make_context(6, version=2)) is WriteThrough.STORED
    await tier.link.barrier()  # every invalidation Redis queued before now has arrived

    loaded = await cache.load(6, CountingLoader(make_context(6, 2)))
    assert (loaded.source, loaded.context.version) == (LoadSource.CACHE, 2)


# ------------------------------------------------------------------- losing it


async def test_losing_the_link_drops_the_near_cache_and_it_serves_again_once_back(
    rig: Rig, prefix: str, data: Redis
) -> None:
    settings = near_settings(prefix)
    cache = rig.cache(settings)
    tier = await rig.tier(cache, settings)
    await warm(cache, make_context(8, version=1), tier)
    assert (await cache.load(8, CountingLoader(make_context(8, 1)))).source is LoadSource.NEAR
    killed = tier.link.client_id
    assert killed is not None
    lost = metric("memlayer_near_cache_drops_total", reason="link_lost")
    recorder = Recorder()
    tier.link.subscribe(recorder)

    await data.execute_command("CLIENT", "KILL", "ID", killed)
    await asyncio.wait_for(recorder.lost.wait(), WAIT_S)

    assert not cache.near_serving and len(near_of(cache)) == 0
    assert metric("memlayer_near_cache_drops_total", reason="link_lost") == lost + 1
    during = await cache.load(8, CountingLoader(make_context(8, 1)))
    assert during.source is LoadSource.CACHE  # Redis, as before the near-cache
    await asyncio.wait_for(tier.link.wait_established(), WAIT_S)
    assert tier.link.client_id not in (None, killed)
    await cache.load(8, CountingLoader(make_context(8, 1)))  # read again under a ticket
    back = await cache.load(8, CountingLoader(make_context(8, 1)))
    assert back.source is LoadSource.NEAR


async def test_a_redis_restart_drops_the_near_cache_and_nothing_older_is_served(
    rig: Rig, prefix: str, tmp_path: Path
) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = RedisServer(tmp_path / "first")
    proxy = await ChaosProxy(first.port).start()
    second: RedisServer | None = None
    try:
        first.wait_ready()
        settings = near_settings(prefix, proxy.url)
        cache = rig.cache(settings)
        tier = await rig.tier(cache, settings)
        await warm(cache, make_context(9, version=4), tier)
        assert (await cache.load(9, CountingLoader(make_context(9, 4)))).source is LoadSource.NEAR
        recorder = Recorder()
        tier.link.subscribe(recorder)

        first.stop()  # the restart: a new, empty server at the same address
        await asyncio.wait_for(recorder.lost.wait(), WAIT_S)
        assert not cache.near_serving and len(near_of(cache)) == 0
        second = RedisServer(tmp_path / "second")
        second.wait_ready()
        proxy.upstream_port = second.port
        await asyncio.wait_for(tier.link.wait_established(), WAIT_S)

        # Postgres moved on meanwhile; nothing from before the restart may come back.
        loaded = await cache.load(9, CountingLoader(make_context(9, 5)))
        assert loaded.context.version == 5 and loaded.source is not LoadSource.NEAR
    finally:
        await proxy.aclose()
        first.stop()
        if second is not None:
            second.stop()


async def test_another_process_turning_the_cache_over_drops_the_near_cache_at_once(
    rig: Rig, prefix: str
) -> None:
    settings = near_settings(prefix, cache_epoch_check_ms=60_000)  # no periodic check
    cache = rig.cache(settings)
    tier = await rig.tier(cache, settings)
    await warm(cache, make_context(10, version=1), tier)
    assert (await cache.load(10, CountingLoader(make_context(10, 1)))).source is LoadSource.NEAR
    other = rig.cache(settings)
    await other.load(11, CountingLoader(make_context(11, 1)))  # establishes its generation
    dropped = metric("memlayer_near_cache_drops_total", reason="epoch_changed")

    await other.turn_over()
    await tier.link.barrier()

    assert metric("memlayer_near_cache_drops_total", reason="epoch_changed") == dropped + 1
    assert len(near_of(cache)) == 0


# ------------------------------------------------------------------- re-checks


async def test_a_sampled_recheck_catches_a_planted_stale_entry_and_counts_it(
    rig: Rig, prefix: str, data: Redis
) -> None:
    settings = near_settings(prefix, near_cache_recheck_fraction=1.0)
    cache = rig.cache(settings)
    tier = await rig.tier(cache, settings)
    stale = make_context(12, version=4)
    await warm(cache, stale, tier)  # this process wrote v4
    generation = cache.generation
    assert generation is not None
    # Another process writes v5; its invalidation arrives; then the old entry is planted
    # back, as if that invalidation had been lost.
    await data.set(keys.context_key(prefix, 12, generation), encode(make_context(12, 5)))
    await tier.link.barrier()
    near_of(cache).plant((CONTEXT_FAMILY, 12), stale, encode(stale), generation)
    stale_before = metric("memlayer_cache_consistency_checks_total", tier="near", result="stale")

    served = await cache.load(12, CountingLoader(make_context(12, 5)))
    await cache.rechecks_settled()

    assert (served.source, served.context.version) == (LoadSource.NEAR, 4)  # the plant
    assert (
        metric("memlayer_cache_consistency_checks_total", tier="near", result="stale")
        == stale_before + 1
    )
    after = await cache.load(12, CountingLoader(make_context(12, 5)))
    assert (after.source, after.context.version) == (LoadSource.CACHE, 5)  # evicted


# ---------------------------------------------------------------- memory bound


async def test_memory_stays_within_its_bound_under_a_zipf_load_of_many_users(
    rig: Rig, prefix: str
) -> None:
    users, loads, max_entries, max_bytes = 3000, 12_000, 1000, 200_000
    settings = near_settings(
        prefix, near_cache_max_entries=max_entries, near_cache_max_bytes=max_bytes
    )
    cache = rig.cache(settings)
    near = near_of(cache)
    near.link_established()
    contexts = {u: make_context(u, version=1, memories=1 + u % 5) for u in range(1, users + 1)}
    gate = asyncio.Semaphore(32)

    async def put(context: MemoryContext) -> None:
        async with gate:
            await cache.write_through(context)

    await asyncio.gather(*(put(c) for c in contexts.values()))
    rng = random.Random(14)
    weights = [1 / rank for rank in range(1, users + 1)]  # Zipf, s = 1.0
    plan = rng.choices(list(contexts), weights=weights, k=loads)
    sources: dict[LoadSource, int] = {}
    peak_entries = peak_bytes = 0
    tracemalloc.start()  # traces what the loads allocate: the entries among it
    try:
        for user_id in plan:
            result = await cache.load(user_id, CountingLoader(contexts[user_id]))
            sources[result.source] = sources.get(result.source, 0) + 1
            peak_entries = max(peak_entries, len(near))
            peak_bytes = max(peak_bytes, near.bytes_used)
        del result
        # What the near-cache holds in process memory: what dropping it gives back.
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        near.drop(DropReason.CLOSED)
        gc.collect()
        held = before - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()

    assert peak_entries <= max_entries and peak_bytes <= max_bytes
    assert sources[LoadSource.NEAR] > loads / 3, sources  # the hot head is served from memory
    print(f"near-cache: {peak_bytes:,} encoded bytes, {held:,} bytes freed by dropping it")
    # Process memory follows the bound: each entry keeps its bytes and its decoded objects,
    # 4x to 10x the encoded size (small contexts pay most per-object overhead; measured
    # ~10x for these 1-5 memory contexts, settings.near_cache_max_bytes); 12x is the ceiling.
    assert 0 < held < 12 * max_bytes, held
