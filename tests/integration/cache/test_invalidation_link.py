"""The invalidation link on real Redis: every change reaches us, or we know we are deaf.

Writes, CLIENT KILL and barriers run on the shared Redis under a prefix of this test's
own (CLIENT KILL names the link's own client id). FLUSHALL, restarts and partitions only
ever happen to a redis-server (and a proxy) these tests started.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from memlayer.cache import keys
from memlayer.cache.codec import encode, encode_marker, is_marker, value_version
from memlayer.cache.invalidation import InvalidationLink, LinkDown
from memlayer.cache.keys import CONTEXT_FAMILY, EntityKey
from memlayer.cache.lag_probe import LagObserver, LagProbeWriter
from memlayer.cache.near import NearCache
from memlayer.cache.near_recheck import RecheckResult, recheck
from memlayer.records import MemoryContext
from memlayer.settings import Settings
from tests.support.contexts import make_context
from tests.support.metrics import metric
from tests.support.near_link import Recorder
from tests.support.redis_server import RedisServer
from tests.support.services import base_redis_url
from tests.support.tcp_proxy import ChaosProxy

WAIT_S = 5.0  # generous: a shared 2-core machine; the bench reports real lags
GEN = 1

LinkFactory = Callable[..., tuple[InvalidationLink, Recorder]]


def _settings() -> Settings:
    return Settings(
        near_cache_link_check_ms=50,
        near_cache_link_timeout_ms=200,
        near_cache_reconnect_initial_ms=10,
        near_cache_reconnect_max_ms=100,
    )


@pytest.fixture
def prefix() -> str:
    return f"memlayer-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def make_link(prefix: str) -> AsyncIterator[LinkFactory]:
    links: list[InvalidationLink] = []

    def factory(url: str | None = None, **kwargs: Any) -> tuple[InvalidationLink, Recorder]:
        link = InvalidationLink.for_url(url or base_redis_url(), prefix, _settings(), **kwargs)
        recorder = Recorder()
        link.subscribe(recorder)
        links.append(link)
        return link, recorder

    yield factory
    for link in links:
        await link.aclose()


@pytest.fixture
async def data() -> AsyncIterator[Redis]:
    client = Redis.from_url(base_redis_url())
    yield client
    await client.aclose()


def near_cache() -> NearCache[MemoryContext]:
    return NearCache(
        max_entries=100, max_bytes=1 << 20, max_age_s=60.0, version_of=lambda c: c.version
    )


async def established(link: InvalidationLink) -> None:
    link.start()
    await asyncio.wait_for(link.wait_established(), WAIT_S)


# ------------------------------------------------------------------ delivery


async def test_a_write_by_another_connection_reaches_the_subscriber(
    make_link: LinkFactory, data: Redis, prefix: str
) -> None:
    link, recorder = make_link()
    await established(link)

    await data.set(keys.context_key(prefix, 42, GEN), b"v")
    await data.eval(  # a script's writes are tracked too
        "redis.call('SET', KEYS[1], 'v'); redis.call('SET', KEYS[2], 't')",
        2,
        keys.context_key(prefix, 43, GEN),
        keys.lease_key(prefix, 43, GEN),
    )
    await data.set(keys.context_key(prefix + "x", 44, GEN), b"v")  # another prefix

    await asyncio.wait_for(recorder.key(EntityKey(CONTEXT_FAMILY, 43, GEN)), WAIT_S)
    await link.barrier()
    assert recorder.keys == [EntityKey(CONTEXT_FAMILY, 42, GEN), EntityKey(CONTEXT_FAMILY, 43, GEN)]


async def test_a_barrier_returns_after_every_invalidation_queued_before_it(
    make_link: LinkFactory, data: Redis, prefix: str
) -> None:
    link, recorder = make_link()
    await established(link)

    for user in range(20):
        await data.set(keys.context_key(prefix, user, GEN), b"v")
    await link.barrier()

    # No waiting: Redis answered the barrier's PING after queueing all of them.
    assert {k.entity_id for k in recorder.keys} == set(range(20))


async def test_a_near_cache_subscribed_to_the_link_evicts_what_changes(
    make_link: LinkFactory, data: Redis, prefix: str
) -> None:
    link, _ = make_link()
    near = near_cache()
    link.subscribe(near)
    await established(link)
    context = make_context(7, version=3)
    near.plant((CONTEXT_FAMILY, 7), context, encode(context), GEN)
    assert near.get((CONTEXT_FAMILY, 7), GEN) is not None

    await data.set(keys.context_key(prefix, 7, GEN), encode(make_context(7, version=4)))
    await link.barrier()

    assert near.get((CONTEXT_FAMILY, 7), GEN) is None


async def test_a_barrier_on_a_link_that_is_down_says_so(make_link: LinkFactory) -> None:
    link, _ = make_link()

    with pytest.raises(LinkDown):
        await link.barrier()


# ---------------------------------------------------------------------- loss


async def test_client_kill_of_the_link_is_a_loss_and_the_link_comes_back(
    make_link: LinkFactory, data: Redis, prefix: str
) -> None:
    link, recorder = make_link()
    near = near_cache()
    link.subscribe(near)
    await established(link)
    context = make_context(5, version=1)
    near.plant((CONTEXT_FAMILY, 5), context, encode(context), GEN)
    killed = link.client_id
    assert killed is not None

    await data.execute_command("CLIENT", "KILL", "ID", killed)
    await asyncio.wait_for(recorder.lost.wait(), WAIT_S)

    assert len(near) == 0 and not near.serving
    await asyncio.wait_for(link.wait_established(), WAIT_S)
    assert link.client_id not in (None, killed)
    assert near.serving
    await data.set(keys.context_key(prefix, 6, GEN), b"v")  # tracked again
    await asyncio.wait_for(recorder.key(EntityKey(CONTEXT_FAMILY, 6, GEN)), WAIT_S)
    assert recorder.events == ["established", "lost", "established"]


async def test_flushall_drops_the_near_cache(make_link: LinkFactory, own_redis_port: int) -> None:
    url = f"redis://127.0.0.1:{own_redis_port}/0"
    link, recorder = make_link(url)
    near = near_cache()
    link.subscribe(near)
    await established(link)
    context = make_context(5, version=1)
    near.plant((CONTEXT_FAMILY, 5), context, encode(context), GEN)
    before = metric("memlayer_near_cache_drops_total", reason="flush_all")

    own = Redis.from_url(url)
    try:
        await own.flushall()
    finally:
        await own.aclose()
    await asyncio.wait_for(recorder.flushed_event.wait(), WAIT_S)

    assert len(near) == 0
    assert near.serving  # a flush is news, not a loss: the link is still whole
    assert metric("memlayer_near_cache_drops_total", reason="flush_all") == before + 1


async def test_a_silent_partition_is_caught_by_the_liveness_ping(
    make_link: LinkFactory, proxy: ChaosProxy
) -> None:
    link, recorder = make_link(proxy.url)
    near = near_cache()
    link.subscribe(near)
    await established(link)

    proxy.stall()  # nothing moves, nothing is closed: only a PING can tell
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(recorder.lost.wait(), WAIT_S)
    detected_after = loop.time() - started

    assert not near.serving
    # check interval 50 ms + PING timeout 200 ms; generous for a loaded machine.
    assert detected_after < 2.0, detected_after
    proxy.forward()
    await asyncio.wait_for(link.wait_established(), WAIT_S)


async def test_a_redis_restart_drops_the_near_cache_until_the_link_is_back(
    make_link: LinkFactory, tmp_path: Path
) -> None:
    # The link reaches Redis at one address (a proxy of ours); the restart is a server
    # stopped and a new, empty one answering at that address.
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = RedisServer(tmp_path / "first")
    proxy = await ChaosProxy(first.port).start()
    second: RedisServer | None = None
    try:
        first.wait_ready()
        link, recorder = make_link(proxy.url)
        near = near_cache()
        link.subscribe(near)
        await established(link)
        context = make_context(5, version=1)
        near.plant((CONTEXT_FAMILY, 5), context, encode(context), GEN)

        first.stop()
        await asyncio.wait_for(recorder.lost.wait(), WAIT_S)
        assert len(near) == 0 and not near.serving

        second = RedisServer(tmp_path / "second")
        second.wait_ready()
        proxy.upstream_port = second.port
        await asyncio.wait_for(link.wait_established(), WAIT_S)
        assert near.serving
    finally:
        await proxy.aclose()
        first.stop()
        if second is not None:
            second.stop()


# ----------------------------------------------------------------- re-checks


def _complete_version(raw: bytes) -> int | None:
    return None if is_marker(raw) else value_version(raw)


async def test_a_sampled_recheck_catches_a_planted_stale_entry(
    make_link: LinkFactory, data: Redis, prefix: str
) -> None:
    link, _ = make_link()
    near = near_cache()
    link.subscribe(near)
    await established(link)
    name = keys.context_key(prefix, 9, GEN)
    await data.set(name, encode(make_context(9, version=5)))
    await link.barrier()
    stale = make_context(9, version=4)
    near.plant((CONTEXT_FAMILY, 9), stale, encode(stale), GEN)  # no invalidation will come
    entry = near.get((CONTEXT_FAMILY, 9), GEN)
    assert entry is not None
    before = metric("memlayer_near_cache_rechecks_total", result="mismatch")

    async def read() -> bytes | None:
        return await data.get(name)  # type: ignore[no-any-return]

    found = await recheck(
        near,
        (CONTEXT_FAMILY, 9),
        entry,
        read=read,
        complete_version=_complete_version,
        barrier=link.barrier,
    )

    assert (found.result, found.near_version, found.redis_version) == (
        RecheckResult.MISMATCH,
        4,
        5,
    )
    assert near.get((CONTEXT_FAMILY, 9), GEN) is None
    assert metric("memlayer_near_cache_rechecks_total", result="mismatch") == before + 1


async def test_a_recheck_that_raced_with_a_write_is_not_called_stale(
    make_link: LinkFactory, data: Redis, prefix: str
) -> None:
    link, _ = make_link()
    near = near_cache()
    link.subscribe(near)
    await established(link)
    name = keys.context_key(prefix, 10, GEN)
    current = make_context(10, version=1)
    near.plant((CONTEXT_FAMILY, 10), current, encode(current), GEN)
    entry = near.get((CONTEXT_FAMILY, 10), GEN)
    assert entry is not None

    async def read_then_a_write_lands() -> bytes | None:
        await data.set(name, encode_marker(2))  # a write, its invalidation now in flight
        return await data.get(name)  # type: ignore[no-any-return]

    found = await recheck(
        near,
        (CONTEXT_FAMILY, 10),
        entry,
        read=read_then_a_write_lands,
        complete_version=_complete_version,
        barrier=link.barrier,
    )

    assert found.result is RecheckResult.RACED


async def test_a_consistent_entry_passes_its_recheck(
    make_link: LinkFactory, data: Redis, prefix: str
) -> None:
    link, _ = make_link()
    near = near_cache()
    link.subscribe(near)
    await established(link)
    name = keys.context_key(prefix, 11, GEN)
    context = make_context(11, version=3)
    await data.set(name, encode(context))
    await link.barrier()
    near.plant((CONTEXT_FAMILY, 11), context, encode(context), GEN)
    entry = near.get((CONTEXT_FAMILY, 11), GEN)
    assert entry is not None

    async def read() -> bytes | None:
        return await data.get(name)  # type: ignore[no-any-return]

    found = await recheck(
        near,
        (CONTEXT_FAMILY, 11),
        entry,
        read=read,
        complete_version=_complete_version,
        barrier=link.barrier,
    )

    assert found.result is RecheckResult.CONSISTENT
    assert near.get((CONTEXT_FAMILY, 11), GEN) is entry


# -------------------------------------------------------------------- lag probe


async def test_probe_writes_become_lag_samples(
    make_link: LinkFactory, data: Redis, prefix: str
) -> None:
    samples: list[float] = []
    observer = LagObserver(5000, record=samples.append)
    link, _ = make_link(probes=observer)
    await established(link)
    writer = LagProbeWriter(data, prefix, interval_s=1.0, lifetime_ms=5000)

    for _ in range(3):
        await writer.write_once()
    await link.barrier()

    assert len(samples) == 3
    assert all(0 <= s < WAIT_S for s in samples)
