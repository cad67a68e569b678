"""TTLs on real Postgres: exact fractional TTLs, defaults, expiry without a sweep, refreshes
that never turn a read into a write and are coalesced, and the sweeper.

Ageing a row is done by moving its ``expires_at`` back in SQL (as if the time had passed),
so no test here waits on the clock.
"""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from memlayer.store import InvalidOperation, MemlayerStore
from tests.support.store import OpenStore, StatementLog


async def _rows(engine: AsyncEngine) -> dict[str, tuple[float | None, timedelta | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT key, ttl_minutes, expires_at - updated_at FROM store_items")
        )
        return {key: (ttl, life) for key, ttl, life in rows}


async def _age(engine: AsyncEngine, seconds: float, key: str | None = None) -> None:
    """Pretend ``seconds`` passed for TTL rows (all, or one key)."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE store_items SET expires_at = expires_at - make_interval(secs => :s) "
                "WHERE expires_at IS NOT NULL AND (CAST(:k AS text) IS NULL OR key = :k)"
            ),
            {"s": seconds, "k": key},
        )


async def test_a_fractional_ttl_is_kept_exactly(store: MemlayerStore, admin_engine) -> None:
    await store.aput(("t",), "quarter", {"v": 1}, ttl=0.25)
    await store.aput(("t",), "odd", {"v": 1}, ttl=1 / 3)
    rows = await _rows(admin_engine)
    assert rows["quarter"] == (0.25, timedelta(seconds=15))
    assert rows["odd"][0] == 1 / 3
    assert rows["odd"][1] == timedelta(seconds=20)


async def test_the_default_ttl_comes_from_ttl_config_then_settings(
    open_pg_store: OpenStore, admin_engine: AsyncEngine
) -> None:
    async with open_pg_store(ttl={"default_ttl": 2.5}) as store:
        await store.aput(("t",), "default", {"v": 1})
        await store.aput(("t",), "none", {"v": 1}, ttl=None)
        await store.aput(("t",), "own", {"v": 1}, ttl=0.5)
    async with open_pg_store(store_default_ttl_minutes=7) as store:
        await store.aput(("t",), "from-settings", {"v": 1})
    async with open_pg_store(ttl={"default_ttl": None}, store_default_ttl_minutes=7) as store:
        await store.aput(("t",), "config-wins", {"v": 1})
    rows = await _rows(admin_engine)
    assert {k: ttl for k, (ttl, _) in rows.items()} == {
        "default": 2.5,
        "none": None,
        "own": 0.5,
        "from-settings": 7.0,
        "config-wins": None,
    }


async def test_an_expired_row_is_invisible_before_any_sweep(
    store: MemlayerStore, admin_engine: AsyncEngine
) -> None:
    await store.aput(("gone",), "k", {"v": 1}, ttl=10)
    await store.aput(("kept",), "k", {"v": 1}, ttl=10)
    first = await store.aget(("gone",), "k")
    await _age(admin_engine, 601, key="k")
    await store.aput(("kept",), "k", {"v": 2}, ttl=10)  # a put starts a new life
    assert await store.aget(("gone",), "k") is None
    assert [i.namespace for i in await store.asearch(())] == [("kept",)]
    assert await store.alist_namespaces() == [("kept",)]
    # A put over an expired row that no sweep removed yet creates a new item.
    await store.aput(("gone",), "k", {"v": 3})
    again = await store.aget(("gone",), "k")
    assert first is not None and again is not None
    assert again.created_at > first.created_at


async def test_reading_items_without_a_ttl_never_writes(store: MemlayerStore) -> None:
    for i in range(3):
        await store.aput(("plain",), f"k{i}", {"i": i})
    with StatementLog(store.repository.engine) as log:
        for _ in range(10):
            await store.aget(("plain",), "k0", refresh_ttl=True)
            await store.asearch(("plain",), refresh_ttl=True)
            await store.asearch(("plain",), filter={"i": {"$gte": 1}}, refresh_ttl=True)
        await store.flush_ttl_refreshes()
    assert len(log.statements) == 30
    assert log.writes == []
    assert store.refresher.pending == 0


async def test_ttl_refreshes_are_coalesced_into_one_statement(
    open_pg_store: OpenStore, admin_engine: AsyncEngine
) -> None:
    """TTL 10 min, refresh interval 60 s: reads of fresh items write nothing; once an
    item's expiry is over 60 s old, any number of reads make one UPDATE for all items.
    (The background flush is pushed out of the test's way; the explicit flush stands in.)"""
    async with open_pg_store(store_ttl_refresh_flush_seconds=3600) as store:
        await _coalesced(store, admin_engine)


async def test_the_background_task_writes_noted_refreshes(
    open_pg_store: OpenStore, admin_engine: AsyncEngine
) -> None:
    async with open_pg_store(store_ttl_refresh_flush_seconds=0.01) as store:
        flushed = asyncio.Event()
        written: list[int] = []
        store.refresher.after_flush = lambda n: (written.append(n), flushed.set())
        await store.aput(("ttl",), "k", {"v": 1}, ttl=10)
        await _age(admin_engine, 61)
        assert await store.aget(("ttl",), "k") is not None
        await asyncio.wait_for(flushed.wait(), timeout=30)
    assert written == [1]
    [(_ttl, life)] = (await _rows(admin_engine)).values()
    assert life is not None and life > timedelta(minutes=10)


async def _coalesced(store: MemlayerStore, admin_engine: AsyncEngine) -> None:
    keys = [f"k{i}" for i in range(5)]
    for key in keys:
        await store.aput(("ttl",), key, {"v": 1}, ttl=10)
    with StatementLog(store.repository.engine) as log:
        await asyncio.gather(*(store.aget(("ttl",), k) for k in keys))
        await store.flush_ttl_refreshes()
    assert log.writes == []

    await _age(admin_engine, 61)
    with StatementLog(store.repository.engine) as log:
        reads = [store.aget(("ttl",), k) for k in keys for _ in range(10)]
        await asyncio.gather(*reads, store.asearch(("ttl",)), store.asearch(("ttl",)))
        await store.flush_ttl_refreshes()
    assert len(log.writes) == 1, log.writes
    assert log.writes[0].startswith("UPDATE store_items")
    for ttl, life in (await _rows(admin_engine)).values():
        assert ttl == 10 and life is not None and life > timedelta(minutes=10)

    with StatementLog(store.repository.engine) as log:
        await asyncio.gather(*(store.aget(("ttl",), k) for k in keys))
        await store.flush_ttl_refreshes()
    assert log.writes == []


async def test_two_handles_write_a_due_refresh_once(
    open_pg_store: OpenStore, admin_engine: AsyncEngine
) -> None:
    """The UPDATE re-checks the interval in SQL: however many processes read the item,
    its row is written once per interval."""
    async with open_pg_store() as one, open_pg_store() as two:
        written: list[int] = []
        one.refresher.after_flush = written.append
        two.refresher.after_flush = written.append
        await one.aput(("ttl",), "k", {"v": 1}, ttl=10)
        await _age(admin_engine, 61)
        assert await one.aget(("ttl",), "k") is not None
        assert await two.aget(("ttl",), "k") is not None
        await one.flush_ttl_refreshes()
        await two.flush_ttl_refreshes()
    assert sum(written) == 1


async def test_refresh_on_read_can_be_off_by_default(
    open_pg_store: OpenStore, admin_engine: AsyncEngine
) -> None:
    async with open_pg_store(ttl={"refresh_on_read": False}) as store:
        await store.aput(("ttl",), "k", {"v": 1}, ttl=10)
        await _age(admin_engine, 61)
        with StatementLog(store.repository.engine) as log:
            await store.aget(("ttl",), "k")
            await store.asearch(("ttl",))
            assert store.refresher.pending == 0
            await store.aget(("ttl",), "k", refresh_ttl=True)  # asked for explicitly
            assert store.refresher.pending == 1
            await store.flush_ttl_refreshes()
        assert len(log.writes) == 1


async def test_the_sweeper_deletes_expired_rows(
    store: MemlayerStore, admin_engine: AsyncEngine
) -> None:
    for key in ("a", "b", "c"):
        await store.aput(("s",), key, {"v": 1}, ttl=10)
    await store.aput(("s",), "forever", {"v": 1})
    await _age(admin_engine, 601, key="a")
    await _age(admin_engine, 601, key="b")
    assert await store.sweep() == 2
    assert set(await _rows(admin_engine)) == {"c", "forever"}
    assert await store.sweep() == 0


async def test_the_background_sweeper_runs_on_its_interval(
    open_pg_store: OpenStore, admin_engine: AsyncEngine
) -> None:
    async with open_pg_store(ttl={"sweep_interval_minutes": 0.002}) as store:
        assert store.sweeper is not None
        swept = asyncio.Event()
        store.sweeper.after_sweep = lambda n: swept.set() if n else None
        await store.aput(("s",), "old", {"v": 1}, ttl=10)
        await _age(admin_engine, 601)
        await asyncio.wait_for(swept.wait(), timeout=30)
    assert await _rows(admin_engine) == {}


@pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf, True, "5"])
async def test_a_ttl_must_be_a_positive_number_of_minutes(store: MemlayerStore, ttl) -> None:
    with pytest.raises(InvalidOperation):
        await store.aput(("t",), "k", {"v": 1}, ttl=ttl)
    assert await store.aget(("t",), "k") is None


async def test_ttl_configs_the_store_cannot_honour_are_refused(open_pg_store: OpenStore) -> None:
    with pytest.raises(InvalidOperation, match="omit_expired"):
        async with open_pg_store(ttl={"omit_expired": False}):
            pass
    with pytest.raises(InvalidOperation, match="unknown"):
        async with open_pg_store(ttl={"refresh_ttl": True}):
            pass
