"""Construction: the MEMLAYER_* settings, the embedded default with no configuration,
Postgres with `memlayer migrate`, and clear errors when the database is not ready."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from memlayer.migrations import alembic_config
from memlayer.settings import Settings, get_settings
from memlayer.store import StoreNotMigrated, StoreUnavailable, open_store
from tests.support.services import create_database, drop_database, migrate
from tests.support.store import OpenStore

STORE_TABLES = {"store_items", "store_namespaces"}


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        names = {r[0] for r in rows}
    await engine.dispose()
    return names


@pytest.fixture
async def fresh_url():
    url = await create_database("memlayer_store_mig")
    yield url
    await drop_database(url)


async def test_open_store_with_no_configuration_runs_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEMLAYER_DATABASE_URL", raising=False)
    monkeypatch.setenv("MEMLAYER_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        async with open_store() as store:
            await store.aput(("users", "1"), "k", {"v": 1})
        async with open_store() as store:  # a second handle on the same file
            item = await store.aget(("users", "1"), "k")
    finally:
        get_settings.cache_clear()
    assert item is not None and item.value == {"v": 1}
    assert (tmp_path / "memlayer.db").exists()


async def test_memlayer_migrate_creates_the_store_tables(fresh_url: str) -> None:
    env = {"MEMLAYER_DATABASE_URL": fresh_url, "PATH": "/usr/bin:/bin"}
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "memlayer.cli", "migrate"],
        env=env,
        check=True,
        capture_output=True,
    )
    assert STORE_TABLES <= await _tables(fresh_url)
    async with open_store(Settings(database_url=fresh_url, cache_enabled=False)) as store:
        await store.aput(("m",), "k", {"v": 1})
        assert await store.aget(("m",), "k") is not None


async def test_the_store_migration_downgrades_and_upgrades_again(fresh_url: str) -> None:
    await migrate(fresh_url)
    await asyncio.to_thread(command.downgrade, alembic_config(fresh_url), "0004")
    tables = await _tables(fresh_url)
    assert not tables & STORE_TABLES
    assert "memory_versions" in tables  # the memory tables stay
    await migrate(fresh_url)
    assert STORE_TABLES <= await _tables(fresh_url)


async def test_a_postgres_database_without_the_tables_says_to_migrate(fresh_url: str) -> None:
    with pytest.raises(StoreNotMigrated, match="memlayer migrate"):
        async with open_store(Settings(database_url=fresh_url, cache_enabled=False)):
            pass


async def test_an_unreachable_database_is_store_unavailable() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    with pytest.raises(StoreUnavailable):
        async with open_store(
            Settings(database_url=url, database_pool_timeout_seconds=2, cache_enabled=False)
        ):
            pass


async def test_two_handles_see_each_others_writes(open_pg_store: OpenStore) -> None:
    async with open_pg_store() as one, open_pg_store() as two:
        await one.aput(("shared",), "k", {"v": 1})
        item = await two.aget(("shared",), "k")
        assert item is not None and item.value == {"v": 1}
        await two.adelete(("shared",), "k")
        assert await one.aget(("shared",), "k") is None
