"""The Redis tier in front of the store, on real Postgres and Redis: what a read and a write
cost each tier, what goes to Postgres and why, expiry, stale fills, and one Redis with one
breaker and one generation shared with the memory contexts."""

from __future__ import annotations

import asyncio

import pytest
from langgraph.store.base import GetOp, PutOp, SearchOp
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from memlayer.cache import make_redis_client
from memlayer.cache import metrics as cache_metrics
from memlayer.cache.codec import read_frame
from memlayer.cache.keys import namespace_digest, namespace_key
from memlayer.memory.coherence import context_cache
from memlayer.memory.db import Database
from memlayer.settings import MissingRedisUrl, Settings
from memlayer.store import MemlayerStore, StoreWriteOutcomeUnknown, open_store
from memlayer.store import metrics as store_metrics
from tests.support.metrics import current
from tests.support.store import OpenStore, StatementLog, mgets
from tests.support.tcp_proxy import ChaosProxy


async def _outbox(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT entity_id, version FROM cache_outbox WHERE family = 'ns'")
        )
        return {entity: version for entity, version in rows}


async def _seed(store: MemlayerStore) -> None:
    await store.abatch(
        [PutOp(("users", str(u), "mem"), f"k{i}", {"i": i}) for u in range(3) for i in range(4)]
        + [PutOp(("users", "0"), "profile", {"name": "zero"})]
    )


async def test_warm_gets_and_searches_of_a_batch_are_one_mget_and_no_statement(
    open_cached_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cached_store() as store:
        await _seed(store)  # the write-through installs every namespace it changed
        ops = [
            GetOp(("users", "0", "mem"), "k1"),
            GetOp(("users", "1", "mem"), "k2"),
            GetOp(("users", "2", "mem"), "missing"),
            GetOp(("users", "0"), "profile"),
            SearchOp(("users", "1", "mem"), limit=2, offset=1),
            SearchOp(("users", "2", "mem"), filter={"i": {"$gte": 2}}),
        ]
        with mgets(monkeypatch) as calls, StatementLog(store.repository.engine) as log:
            results = await store.abatch(ops)
    assert log.statements == []
    assert len(calls) == 1 and len(calls[0]) == 4  # four namespaces, one round trip
    assert [r.key if r else None for r in results[:4]] == ["k1", "k2", None, "profile"]
    assert [i.key for i in results[4]] == ["k1", "k2"]  # one batch, one time: by key
    assert sorted(i.key for i in results[5]) == ["k2", "k3"]


async def test_the_misses_of_a_batch_are_filled_by_one_statement(
    open_cached_store: OpenStore,
) -> None:
    async with open_cached_store() as store:
        await _seed(store)
        assert store.cache is not None
        await store.cache.turn_over()  # a cold cache: every namespace misses
        ops = [GetOp(("users", str(u), "mem"), "k0") for u in range(3)]
        ops.append(SearchOp(("users", "0", "mem"), limit=5))
        with StatementLog(store.repository.engine) as log:
            cold = await store.abatch(ops)
        with StatementLog(store.repository.engine) as warm_log:
            warm = await store.abatch(ops)
    assert len(log.statements) == 1 and log.statements[0].startswith("SELECT")
    assert warm_log.statements == []
    assert [r.key for r in cold[:3]] == ["k0", "k0", "k0"]
    assert cold == warm


async def test_concurrent_misses_of_one_namespace_cost_one_load(
    open_cached_store: OpenStore,
) -> None:
    async with open_cached_store() as store:
        await store.aput(("hot",), "k", {"v": 1})
        assert store.cache is not None
        await store.cache.turn_over()
        with StatementLog(store.repository.engine) as log:
            found = await asyncio.gather(*(store.aget(("hot",), "k") for _ in range(50)))
    assert len(log.statements) == 1
    assert all(item is not None and item.value == {"v": 1} for item in found)


async def test_a_cached_write_owes_the_outbox_in_the_bump_and_reads_back_once(
    open_cached_store: OpenStore, admin_engine: AsyncEngine
) -> None:
    """The uncached write's four statements (the bump owes the outbox in the same one),
    plus one read-back; the writer's acknowledgement clears the rows once Redis holds the
    versions."""
    async with open_cached_store(outbox_ack_interval_ms=3_600_000) as store:
        await _seed(store)
        ops = [PutOp(("users", "0", "mem"), f"n{i}", {"i": i}) for i in range(3)]
        ops.append(PutOp(("users", "1", "mem"), "k0", None))
        with StatementLog(store.repository.engine) as log:
            await store.abatch(ops)
        verbs = [s.split(" ", 2)[:2] for s in log.statements]
        assert verbs == [
            ["INSERT", "INTO"],  # missing namespace rows
            ["WITH", "locked"],  # lock, bump versions, owe the outbox the new ones
            ["INSERT", "INTO"],  # upsert items
            ["DELETE", "FROM"],  # deletes
            ["SELECT", "anon_1.op,"],  # the changed namespaces, read back for Redis
        ], log.statements
        owed = await _outbox(admin_engine)
        # (version + tree_version): the seed made each mem namespace 1 + 1, this write 1 more.
        assert owed[namespace_digest("users.0.mem")] == 3
        assert owed[namespace_digest("users.1.mem")] == 3
        with StatementLog(store.repository.engine) as log:
            assert (await store.aget(("users", "0", "mem"), "n2")) is not None
            assert await store.aget(("users", "1", "mem"), "k0") is None
        assert log.statements == []  # the write-through installed the new values
    assert await _outbox(admin_engine) == {}  # acknowledged (flushed at close)


async def test_what_the_cache_cannot_answer_goes_to_postgres_in_one_statement(
    open_cached_store: OpenStore,
) -> None:
    """Searches over a prefix with namespaces below it, over every namespace, and ops on a
    namespace past the cap are answered by Postgres, counted by why."""
    async with open_cached_store(store_cache_max_items=3) as store:
        await _seed(store)  # users.N.mem hold four items each: over a cap of three
        await store.aput(("small",), "k", {"v": 1})
        reasons = ("descendants", "over_cap", "root")
        before = {r: current(store_metrics.UNCACHED.labels(r)) for r in reasons}
        ops = [
            SearchOp(("users",), limit=3),  # namespaces below
            SearchOp((), limit=3),  # every namespace
            GetOp(("users", "1", "mem"), "k1"),  # over the cap
            SearchOp(("users", "1", "mem")),  # over the cap
            GetOp(("small",), "k"),  # cached
            SearchOp(("small",)),  # cached
        ]
        with StatementLog(store.repository.engine) as log:
            results = await store.abatch(ops)
    assert len(log.statements) == 1
    assert [len(results[0]), len(results[1])] == [3, 3]
    assert results[2] is not None and results[2].value == {"i": 1}
    assert len(results[3]) == 4
    assert results[4] is not None and [i.key for i in results[5]] == ["k"]
    after = {r: current(store_metrics.UNCACHED.labels(r)) for r in before}
    assert {r: after[r] - before[r] for r in before} == {
        "descendants": 1,
        "over_cap": 2,
        "root": 1,
    }


async def test_warm_reads_never_write_even_when_they_ask_for_a_refresh(
    open_cached_store: OpenStore,
) -> None:
    async with open_cached_store() as store:
        for i in range(3):
            await store.aput(("plain",), f"k{i}", {"i": i})
        with StatementLog(store.repository.engine) as log:
            for _ in range(20):
                await store.aget(("plain",), "k0", refresh_ttl=True)
                await store.asearch(("plain",), filter={"i": {"$gte": 1}}, refresh_ttl=True)
            await store.flush_ttl_refreshes()
    assert log.statements == []


async def test_a_cached_namespace_is_valid_until_its_earliest_expiry_then_reloaded_once(
    open_cached_store: OpenStore,
) -> None:
    """Real time passes here (0.6 s): the thing under test is expiry itself."""
    async with open_cached_store() as store:
        await store.aput(("e",), "brief", {"v": 1}, ttl=0.01)
        await store.aput(("e",), "kept", {"v": 2})
        with StatementLog(store.repository.engine) as log:
            assert await store.aget(("e",), "brief", refresh_ttl=False) is not None
        assert log.statements == []
        await asyncio.sleep(0.6)  # waiting for the clock itself, not for another task
        with StatementLog(store.repository.engine) as log:
            assert await store.aget(("e",), "brief", refresh_ttl=False) is None
            assert [i.key for i in await store.asearch(("e",), refresh_ttl=False)] == ["kept"]
        # The expired value was replaced (at the same version) by the one load: hits again.
        assert len(log.statements) == 1


async def test_a_slow_fill_never_overwrites_a_newer_write(open_cached_store: OpenStore) -> None:
    async with open_cached_store() as store:
        cache = store.cache
        assert cache is not None
        await store.aput(("race",), "k", {"v": 1})
        await cache.turn_over()
        loaded, resume = asyncio.Event(), asyncio.Event()

        async def pause(_digest: str, _value: object) -> None:
            loaded.set()
            await resume.wait()

        cache.hooks.before_fill = pause
        stale_before = current(cache_metrics.FILL_STALE)
        slow = asyncio.create_task(store.aget(("race",), "k"))
        await loaded.wait()  # the reader loaded v1 and holds it
        cache.hooks.before_fill = None
        await store.aput(("race",), "k", {"v": 2})  # committed and written through
        resume.set()
        old = await slow
        with StatementLog(store.repository.engine) as log:
            now = await store.aget(("race",), "k")
    assert old is not None and old.value == {"v": 1}  # it began before the write
    assert current(cache_metrics.FILL_STALE) == stale_before + 1
    assert now is not None and now.value == {"v": 2}
    assert log.statements == []


async def test_two_handles_see_each_others_writes_at_once(open_cached_store: OpenStore) -> None:
    """Two handles, two Redis clients, one Redis: a write is written through before it
    returns, so the other handle's next read (a Redis hit) has it. (The Redis tier alone:
    a near-cache hears of the write by Redis's invalidation, test_store_near.py.)"""
    async with (
        open_cached_store(near_cache_enabled=False) as one,
        open_cached_store(near_cache_enabled=False) as two,
    ):
        await one.aput(("shared",), "k", {"v": 1})
        assert (await two.aget(("shared",), "k")).value == {"v": 1}  # type: ignore[union-attr]
        await two.aput(("shared",), "k", {"v": 2})
        with StatementLog(one.repository.engine) as log:
            item = await one.aget(("shared",), "k")
        assert item is not None and item.value == {"v": 2}
        assert log.statements == []
        await one.adelete(("shared",), "k")
        assert await two.aget(("shared",), "k") is None


async def test_a_writer_cut_off_from_redis_is_seen_by_the_others_within_the_bound(
    cached_settings: Settings, admin_engine: AsyncEngine, redis_port: int
) -> None:
    """The writer's write-through cannot land; its outbox row makes the other handle's
    drainer install a marker, so the other serves the write within the coherence bound.
    The writer itself reads its own write at once (from Postgres, until Redis is told)."""
    proxy = await ChaosProxy(redis_port).start()
    cut_off = cached_settings.model_copy(update={"redis_url": proxy.url})
    bound = cached_settings.coherence_bound_ms / 1000
    try:
        async with open_store(cut_off) as writer, open_store(cached_settings) as reader:
            await writer.aput(("p",), "k", {"v": 1})
            assert (await reader.aget(("p",), "k")).value == {"v": 1}  # type: ignore[union-attr]
            proxy.refuse()
            await writer.aput(("p",), "k", {"v": 2})  # acknowledged: it committed
            assert namespace_digest("p") in await _outbox(admin_engine)
            mine = await writer.aget(("p",), "k")
            assert mine is not None and mine.value == {"v": 2}

            loop = asyncio.get_running_loop()
            started = loop.time()
            while (item := await reader.aget(("p",), "k")) is not None and item.value != {"v": 2}:
                assert loop.time() - started <= bound, "the reader still serves v1"
                await asyncio.sleep(0.02)  # polling: the deadline is the assertion
            for _ in range(20):
                again = await reader.aget(("p",), "k")
                assert again is not None and again.value == {"v": 2}
    finally:
        await proxy.aclose()


async def test_the_store_shares_the_memory_contexts_breaker_and_generation(
    cached_settings: Settings, redis_port: int
) -> None:
    proxy = await ChaosProxy(redis_port).start()
    settings = cached_settings.model_copy(
        update={"redis_url": proxy.url, "breaker_failure_threshold": 1}
    )
    database = Database.from_settings(settings)
    client = make_redis_client(settings)
    contexts = context_cache(client, database, settings)
    try:
        async with open_store(settings, cache=contexts) as store:
            assert store.cache is not None
            await store.aput(("b",), "k", {"v": 1})
            assert store.cache.generation == contexts.generation is not None
            await contexts.turn_over()  # one generation: the store's values go too
            with StatementLog(store.repository.engine) as log:
                await store.aget(("b",), "k")
            assert len(log.statements) == 1

            proxy.refuse()
            item = await store.aget(("b",), "k")  # Redis fails: Postgres answers
            assert item is not None and item.value == {"v": 1}
            assert contexts.breaker_open and store.cache.breaker_open  # one breaker
    finally:
        await contexts.aclose()
        await client.aclose()
        await database.aclose()
        await proxy.aclose()


async def test_a_real_database_without_a_redis_url_is_refused(store_url: str) -> None:
    with pytest.raises(MissingRedisUrl, match="MEMLAYER_CACHE_ENABLED=false"):
        async with open_store(Settings(database_url=store_url)):
            pass


async def test_an_uncached_store_still_owes_the_outbox_so_cached_ones_hear(
    open_cached_store: OpenStore,
    open_pg_store: OpenStore,
    admin_engine: AsyncEngine,
    cached_settings: Settings,
) -> None:
    async with open_cached_store() as cached, open_pg_store() as uncached:
        assert uncached.cache is None
        await cached.aput(("u",), "k", {"v": 1})
        assert (await cached.aget(("u",), "k")).value == {"v": 1}  # type: ignore[union-attr]
        await uncached.aput(("u",), "k", {"v": 2})
        assert namespace_digest("u") in await _outbox(admin_engine)
        bound = cached_settings.coherence_bound_ms / 1000
        loop = asyncio.get_running_loop()
        started = loop.time()
        while (item := await cached.aget(("u",), "k")) is not None and item.value != {"v": 2}:
            assert loop.time() - started <= bound, "the cached store still serves v1"
            await asyncio.sleep(0.02)


async def test_concurrent_reads_share_one_round_trip_and_each_gets_its_own_answer(
    open_cached_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cached_store() as store:
        await _seed(store)
        with mgets(monkeypatch) as calls, StatementLog(store.repository.engine) as log:
            found = await asyncio.gather(
                store.aget(("users", "0", "mem"), "k0"),
                store.aget(("users", "1", "mem"), "k1"),
                store.asearch(("users", "2", "mem"), limit=2),
                store.aget(("users", "0", "mem"), "missing"),
            )
    assert log.statements == []
    assert len(calls) == 1 and len(calls[0]) == 3
    assert found[0] is not None and found[0].value == {"i": 0}
    assert found[1] is not None and found[1].value == {"i": 1}
    assert [i.key for i in found[2]] == ["k0", "k1"]
    assert found[3] is None


async def test_a_bad_read_fails_its_own_caller_only(open_cached_store: OpenStore) -> None:
    """Each caller's ops are validated before they join the others."""
    async with open_cached_store() as store:
        await store.aput(("ok",), "k", {"v": 1})
        good, bad = await asyncio.gather(
            store.aget(("ok",), "k"),
            store.asearch(("ok",), filter={"v": {"$regex": "x"}}),
            return_exceptions=True,
        )
    assert not isinstance(good, BaseException) and good is not None
    assert isinstance(bad, ValueError)


@pytest.mark.parametrize("saved", [True, False], ids=["commit-reached-postgres", "commit-lost"])
async def test_an_unknown_commit_outcome_leaves_a_marker_and_every_reader_right(
    cached_settings: Settings, saved: bool
) -> None:
    """The writer's Postgres link is cut at COMMIT (the reply lost, or the COMMIT itself):
    the write raises StoreWriteOutcomeUnknown and Redis gets a marker at the bumped
    version, so no reader serves the cached older value; each then reads what Postgres
    holds (the new value if it was saved, the old one if not)."""
    url = make_url(cached_settings.database_url or "")
    pg = await ChaosProxy(url.port or 5432, url.host or "127.0.0.1").start()
    through = url.set(host="127.0.0.1", port=pg.port).render_as_string(hide_password=False)
    # Statements as text (no server-side prepared statements): a reused prepared
    # statement carries no SQL the proxy could recognise the write by.
    writer_settings = cached_settings.model_copy(
        update={"database_url": through, "database_prepared_statements": False}
    )
    try:
        async with open_store(writer_settings) as writer, open_store(cached_settings) as reader:
            await writer.aput(("amb",), "k", {"v": 1})
            assert (await reader.aget(("amb",), "k")).value == {"v": 1}  # type: ignore[union-attr]
            assert reader.cache is not None
            generation = reader.cache.generation or 0
            key = namespace_key(
                cached_settings.cache_key_prefix, namespace_digest("amb"), generation
            )

            # The COMMIT of this write (its connection sent the upsert), not a drain round's.
            pg.cut_at(b"COMMIT", deliver=saved, after=b"INSERT INTO store_items")
            with pytest.raises(StoreWriteOutcomeUnknown, match="Retrying it is safe"):
                await writer.aput(("amb",), "k", {"v": 2})

            raw = await reader.cache.store.client.get(key)
            assert raw is not None and read_frame(raw) == (3, None), "a marker at the bump"
            link = reader.cache.near_link
            if link is not None and link.established:
                await link.barrier()  # the marker's invalidation reached the near-cache
            item = await reader.aget(("amb",), "k")
            assert item is not None and item.value == ({"v": 2} if saved else {"v": 1})
    finally:
        await pg.aclose()


async def test_a_namespace_too_big_to_cache_is_read_from_postgres_without_refilling(
    open_cached_store: OpenStore,
) -> None:
    """Past the byte cap the write installs the namespace without its items: readers see
    at once that it must be asked of Postgres (no lease, no fill on every read)."""
    async with open_cached_store(store_cache_max_value_bytes=512) as store:
        await store.abatch([PutOp(("big",), f"k{i}", {"text": "x" * 200}) for i in range(5)])
        for _ in range(2):
            with StatementLog(store.repository.engine) as log:
                item = await store.aget(("big",), "k3")
                found = await store.asearch(("big",), limit=2)
            assert item is not None and len(found) == 2
            assert len(log.statements) == 2, log.statements  # the get, the search: no fill


async def test_with_the_breaker_open_concurrent_reads_cost_one_statement(
    cached_settings: Settings, redis_port: int
) -> None:
    proxy = await ChaosProxy(redis_port).start()
    settings = cached_settings.model_copy(
        update={"redis_url": proxy.url, "breaker_failure_threshold": 1}
    )
    try:
        async with open_store(settings) as store:
            assert store.cache is not None
            await store.aput(("down",), "k", {"v": 1})
            proxy.refuse()
            assert await store.aget(("down",), "k") is not None  # Redis fails: breaker opens
            assert store.cache.breaker_open
            with StatementLog(store.repository.engine) as log:
                found = await asyncio.gather(*(store.aget(("down",), "k") for _ in range(50)))
            assert all(item is not None and item.value == {"v": 1} for item in found)
            assert len(log.statements) == 1
    finally:
        await proxy.aclose()
