"""The near-cache in front of the store's cached namespaces, on real Postgres and Redis.

Warm gets and searches are answered from process memory, with the memory contexts' rules:
never a value Redis no longer vouches for (a write through another handle evicts it, the
link's loss drops everything), never older than this handle's own acknowledged write,
never past the earliest expiry of its items; a planted stale entry is caught by a sampled
re-check. Each handle opened with ``open_store`` runs its own invalidation link (as a
process would); a store opened with the service's cache shares the service's near-cache.
Where a test needs the near-cache to serve with no invalidation ever arriving, it tells
the near-cache its link is up (``near.link_established()``, the call the link makes).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from memlayer.cache import keys, make_redis_client
from memlayer.cache import near_metrics as near_metrics
from memlayer.cache.family_store import FamilyStore
from memlayer.cache.near import NearCache
from memlayer.cache.near_tier import NearTier
from memlayer.memory.coherence import context_cache
from memlayer.memory.db import Database
from memlayer.settings import Settings
from memlayer.store import MemlayerStore, open_store
from memlayer.store import metrics as store_metrics
from memlayer.store.namespace_cache import NamespaceCache
from tests.support.contexts import CountingLoader, make_context
from tests.support.metrics import current, metric
from tests.support.near_link import Recorder
from tests.support.services import base_redis_url
from tests.support.store import NEAR_WAIT_S, OpenStore, StatementLog, mgets, near_ready
from tests.support.tcp_proxy import ChaosProxy

# A link that notices a loss and comes back quickly, no lag probes, no sampled re-checks.
FAST: dict[str, Any] = {
    "near_cache_link_check_ms": 50,
    "near_cache_link_timeout_ms": 200,
    "near_cache_reconnect_initial_ms": 10,
    "near_cache_reconnect_max_ms": 100,
    "near_cache_lag_probe_ms": 0,
    "near_cache_recheck_fraction": 0.0,
}
NS = ("near", "space")
KEY = (keys.NAMESPACE_FAMILY, keys.namespace_digest("near.space"))


def cache_of(store: MemlayerStore) -> NamespaceCache:
    assert store.cache is not None
    return store.cache


def near_of(store: MemlayerStore) -> NearCache[Any]:
    near = cache_of(store).near
    assert near is not None
    return near


async def value_of(store: MemlayerStore, key: str = "k") -> Any:
    item = await store.aget(NS, key, refresh_ttl=False)
    return item.value if item is not None else None


async def settle(store: MemlayerStore, link: Any) -> None:
    """Read NS once from Redis under a fill ticket, after every invalidation queued so
    far (this handle's own write-throughs among them) has arrived: the next read is a
    near hit."""
    await link.barrier()
    await store.aget(NS, "k", refresh_ttl=False)
    assert KEY in near_of(store) and near_of(store).peek(KEY).trusted  # type: ignore[union-attr]


# ----------------------------------------------------------------------- serving


async def test_warm_gets_and_searches_are_served_from_process_memory_without_a_round_trip(
    open_cached_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cached_store(**FAST) as store:
        link = await near_ready(store)
        await store.aput(NS, "k", {"v": 1})
        await store.aput(NS, "j", {"v": 2})
        await settle(store, link)
        near = current(store_metrics.LOOKUP_NEAR)

        with mgets(monkeypatch) as reads, StatementLog(store.repository.engine) as log:
            item = await store.aget(NS, "k")
            found = await store.asearch(NS, limit=5)
            missing = await store.aget(NS, "nothing-here")

    assert reads == [] and log.statements == []  # no Redis round trip, no statement
    assert current(store_metrics.LOOKUP_NEAR) == near + 3
    assert item is not None and item.value == {"v": 1}
    assert [i.key for i in found] == ["j", "k"]  # newest first, as from Redis
    assert missing is None


async def test_a_write_through_another_handle_evicts_the_entry_here(
    open_cached_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cached_store(**FAST) as here, open_cached_store(**FAST) as there:
        link = await near_ready(here)
        await here.aput(NS, "k", {"v": 1})
        await settle(here, link)
        near = current(store_metrics.LOOKUP_NEAR)
        assert await value_of(here) == {"v": 1}
        assert current(store_metrics.LOOKUP_NEAR) == near + 1  # served from memory

        await there.aput(NS, "k", {"v": 2})
        await link.barrier()  # every invalidation Redis queued before now has arrived here

        assert KEY not in near_of(here)
        with mgets(monkeypatch) as reads:
            assert await value_of(here) == {"v": 2}
        assert len(reads) == 1  # from Redis: settled again
        near = current(store_metrics.LOOKUP_NEAR)
        assert await value_of(here) == {"v": 2}
        assert current(store_metrics.LOOKUP_NEAR) == near + 1


@pytest.mark.parametrize("redis_answers", [True, False], ids=["stored", "deferred"])
async def test_a_handle_never_serves_its_pre_write_value_after_acknowledging_a_write(
    cached_settings: Settings, redis_port: int, redis_answers: bool
) -> None:
    """No link at all: the near-cache is told it may serve, and no invalidation will ever
    come. What keeps the old value out is the handle's own write path alone."""
    proxy = await ChaosProxy(redis_port).start()
    # The breaker stays closed: its opening would drop the near-cache by itself.
    settings = cached_settings.model_copy(
        update={
            "redis_url": proxy.url,
            "near_cache_enabled": False,
            "redis_timeout_ms": 100,
            "breaker_failure_threshold": 100,
        }
    )
    try:
        async with open_store(settings) as store:
            near_of(store).link_established()
            await store.aput(NS, "k", {"v": 1})
            await store.aget(NS, "k")  # settled: nothing can void its ticket
            near = current(store_metrics.LOOKUP_NEAR)
            assert await value_of(store) == {"v": 1}
            assert current(store_metrics.LOOKUP_NEAR) == near + 1
            if not redis_answers:
                proxy.refuse()  # the write commits in Postgres; Redis never hears of it

            await store.aput(NS, "k", {"v": 2})  # acknowledged
            assert KEY not in near_of(store)  # evicted once Redis answered, whatever it said
            got = await value_of(store)

            assert got == {"v": 2}
            assert current(store_metrics.LOOKUP_NEAR) == near + 1  # not from memory
            assert cache_of(store).dirty == (0 if redis_answers else 1)
    finally:
        await proxy.aclose()


async def test_a_read_that_raced_with_a_write_elsewhere_is_not_served_from_memory(
    open_cached_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cached_store(**FAST) as here, open_cached_store(**FAST) as there:
        link = await near_ready(here)
        await there.aput(NS, "k", {"v": 1})
        await link.barrier()
        raced_before = metric("memlayer_near_cache_fills_total", outcome="raced")
        # Here, a read's GET of v1 is answered by Redis; its reply is held before the
        # near-cache sees it.
        answered, release = asyncio.Event(), asyncio.Event()
        original = FamilyStore.get_many
        mine = cache_of(here).store

        async def held(self: FamilyStore[str], names: Any, generation: int) -> Any:
            raws = await original(self, names, generation)
            if self is mine and not release.is_set():
                answered.set()
                await release.wait()
            return raws

        monkeypatch.setattr(FamilyStore, "get_many", held)
        reader = asyncio.create_task(value_of(here))
        await asyncio.wait_for(answered.wait(), NEAR_WAIT_S)
        # Meanwhile another handle writes v2, and Redis's invalidation reaches this one.
        await there.aput(NS, "k", {"v": 2})
        await link.barrier()
        release.set()
        raced = await reader
        monkeypatch.setattr(FamilyStore, "get_many", original)

        assert raced == {"v": 1}  # it began before the write
        assert metric("memlayer_near_cache_fills_total", outcome="raced") == raced_before + 1
        near = current(store_metrics.LOOKUP_NEAR)
        assert await value_of(here) == {"v": 2}  # from Redis, not v1 from memory
        assert current(store_metrics.LOOKUP_NEAR) == near
        assert await value_of(here) == {"v": 2}
        assert current(store_metrics.LOOKUP_NEAR) == near + 1  # v2 from memory now


# ------------------------------------------------------------------- losing it


async def test_losing_the_link_drops_the_store_s_entries_and_they_serve_again_once_back(
    open_cached_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cached_store(**FAST) as store:
        link = await near_ready(store)
        await store.aput(NS, "k", {"v": 1})
        await settle(store, link)
        killed = link.client_id
        assert killed is not None
        lost = metric("memlayer_near_cache_drops_total", reason="link_lost")
        recorder = Recorder()
        link.subscribe(recorder)
        admin = Redis.from_url(base_redis_url())
        try:
            await admin.execute_command("CLIENT", "KILL", "ID", killed)
        finally:
            await admin.aclose()
        await asyncio.wait_for(recorder.lost.wait(), NEAR_WAIT_S)

        assert not cache_of(store).near_serving and len(near_of(store)) == 0
        assert metric("memlayer_near_cache_drops_total", reason="link_lost") == lost + 1
        with mgets(monkeypatch) as reads:
            assert await value_of(store) == {"v": 1}  # Redis, as without a near-cache
        assert len(reads) == 1

        await asyncio.wait_for(link.wait_established(), NEAR_WAIT_S)
        assert link.client_id not in (None, killed)
        await settle(store, link)
        near = current(store_metrics.LOOKUP_NEAR)
        assert await value_of(store) == {"v": 1}
        assert current(store_metrics.LOOKUP_NEAR) == near + 1


async def test_a_turnover_drops_the_store_s_entries_with_everything_else(
    open_cached_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cached_store(**FAST) as store:
        link = await near_ready(store)
        await store.aput(NS, "k", {"v": 1})
        await settle(store, link)
        dropped = metric("memlayer_near_cache_drops_total", reason="generation_changed")

        await cache_of(store).turn_over()  # every family's values orphaned at once

        assert len(near_of(store)) == 0
        assert metric("memlayer_near_cache_drops_total", reason="generation_changed") > dropped
        with mgets(monkeypatch) as reads, StatementLog(store.repository.engine) as log:
            assert await value_of(store) == {"v": 1}  # a miss in the new generation: filled
        assert len(reads) == 1 and len(log.statements) == 1


# ------------------------------------------------------------------- re-checks


async def test_a_sampled_recheck_catches_a_planted_stale_entry_and_counts_it(
    open_cached_store: OpenStore,
) -> None:
    async with (
        open_cached_store(**FAST | {"near_cache_recheck_fraction": 1.0}) as here,
        open_cached_store(**FAST) as there,
    ):
        link = await near_ready(here)
        await here.aput(NS, "k", {"v": 1})
        await settle(here, link)
        near = near_of(here)
        stale = near.peek(KEY)
        assert stale is not None and stale.trusted
        # Another handle writes v2; its invalidation arrives; then the old entry is
        # planted back, as if that invalidation had been lost.
        await there.aput(NS, "k", {"v": 2})
        await link.barrier()
        assert KEY not in near
        near.plant(KEY, stale.value, stale.raw, stale.generation)
        stale_before = metric(
            "memlayer_cache_consistency_checks_total", tier="near", result="stale"
        )

        served = await value_of(here)
        await cache_of(here).rechecks_settled()

        assert served == {"v": 1}  # the plant, served once
        assert (
            metric("memlayer_cache_consistency_checks_total", tier="near", result="stale")
            == stale_before + 1
        )
        assert KEY not in near  # evicted by the re-check
        assert await value_of(here) == {"v": 2}


# ------------------------------------------------------------------------- TTL


async def test_an_entry_is_served_only_until_its_earliest_item_expires(
    open_cached_store: OpenStore,
) -> None:
    """Real time passes here (0.6 s): the thing under test is expiry itself."""
    async with open_cached_store(**FAST) as store:
        link = await near_ready(store)
        await store.aput(NS, "brief", {"v": 1}, ttl=0.01)
        await store.aput(NS, "k", {"v": 2})
        await settle(store, link)
        near = current(store_metrics.LOOKUP_NEAR)
        assert await value_of(store, "brief") == {"v": 1}
        assert current(store_metrics.LOOKUP_NEAR) == near + 1  # from memory, while valid
        expired = current(near_metrics.EVICT_EXPIRED)

        await asyncio.sleep(0.6)  # waiting for the clock itself, not for another task

        assert await value_of(store, "brief") is None
        assert current(near_metrics.EVICT_EXPIRED) == expired + 1
        assert current(store_metrics.LOOKUP_NEAR) == near + 1  # not from memory
        assert [i.key for i in await store.asearch(NS, refresh_ttl=False)] == ["k"]


# ---------------------------------------------------------- where it runs, and whose


async def test_a_store_opened_with_the_service_s_cache_shares_its_near_cache_and_link(
    cached_settings: Settings,
) -> None:
    settings = cached_settings.model_copy(update=FAST)
    database = Database.from_settings(settings)
    client = make_redis_client(settings)
    contexts = context_cache(client, database, settings)
    tier = NearTier.start(contexts, settings)
    try:
        async with open_store(settings, cache=contexts) as store:
            assert cache_of(store).near is contexts.near is not None
            assert cache_of(store).near_link is tier.link
            link = await near_ready(store)
            await store.aput(NS, "k", {"v": 1})
            await settle(store, link)
            context = make_context(42, version=1)
            await contexts.write_through(context)
            await link.barrier()
            await contexts.load(42, CountingLoader(context))  # settled under its ticket

            near = current(store_metrics.LOOKUP_NEAR)
            assert await value_of(store) == {"v": 1}
            assert current(store_metrics.LOOKUP_NEAR) == near + 1
            shared = contexts.near
            assert (keys.CONTEXT_FAMILY, 42) in shared and KEY in shared  # one bound
        assert cache_of(store).near_link is tier.link and tier.link.established  # not ours
    finally:
        await tier.aclose()  # the service's order: the near tier before its client
        await contexts.aclose()
        await client.aclose()
        await database.aclose()


async def test_a_standalone_store_runs_its_own_link_and_closes_it_with_itself(
    open_cached_store: OpenStore,
) -> None:
    async with open_cached_store(**FAST) as store:
        link = await near_ready(store)
        near = near_of(store)
    assert not link.established and not near.serving and len(near) == 0


@pytest.mark.parametrize(
    "overrides",
    [{"near_cache_enabled": False}, {"near_cache_max_entries": 0}],
    ids=["near-cache-disabled", "nothing-kept"],
)
async def test_without_the_near_cache_every_warm_read_is_one_redis_read(
    open_cached_store: OpenStore, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any]
) -> None:
    async with open_cached_store(**overrides) as store:
        assert cache_of(store).near_link is None and not cache_of(store).near_serving
        await store.aput(NS, "k", {"v": 1})
        near = current(store_metrics.LOOKUP_NEAR)
        with mgets(monkeypatch) as reads, StatementLog(store.repository.engine) as log:
            for _ in range(3):
                assert await value_of(store) == {"v": 1}
    assert len(reads) == 3 and log.statements == []
    assert current(store_metrics.LOOKUP_NEAR) == near


async def test_an_embedded_store_keeps_no_link(tmp_path: Path) -> None:
    async with open_store(Settings(data_dir=tmp_path)) as store:
        assert cache_of(store).near_link is None and not cache_of(store).near_serving
        await store.aput(NS, "k", {"v": 1})
        assert await value_of(store) == {"v": 1}
