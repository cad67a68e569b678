"""The stores the conformance kit runs against, each on its own real database.

memlayer's store gets a migrated Postgres database, uncached (``MEMLAYER_CACHE_ENABLED=false``)
and cached (Postgres + the real Redis, keys of its own, the near-cache serving), and an
embedded SQLite file (with its in-process Redis stand-in); the peer,
``AsyncPostgresStore``, gets another database of the same Postgres server, set up by its
own ``setup()``. Each store lives for the session and is emptied before every test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph.store.postgres import AsyncPostgresStore
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from memlayer.cache.keys import scan_pattern
from memlayer.settings import Settings
from memlayer.store import MemlayerStore, open_store
from tests.support.services import base_redis_url, create_database, drop_database, migrate
from tests.support.store import near_ready, psycopg_dsn


@pytest.fixture(scope="session")
async def store_pg_url() -> AsyncIterator[str]:
    url = await create_database("memlayer_store")
    try:
        await migrate(url)
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
async def store_pg_engine(store_pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(store_pg_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def memlayer_pg_store(store_pg_url: str) -> AsyncIterator[MemlayerStore]:
    async with open_store(Settings(database_url=store_pg_url, cache_enabled=False)) as store:
        yield store


@pytest.fixture(scope="session")
async def store_cached_url() -> AsyncIterator[str]:
    """The cached store's own database: its drainer takes the outbox rows of its prefix."""
    url = await create_database("memlayer_store_cached")
    try:
        await migrate(url)
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
async def store_cached_engine(store_cached_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(store_cached_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def memlayer_cached_store(store_cached_url: str) -> AsyncIterator[MemlayerStore]:
    settings = Settings(
        database_url=store_cached_url,
        redis_url=base_redis_url(),
        cache_key_prefix=f"memlayer-kit-{uuid.uuid4().hex[:8]}",
    )
    try:
        async with open_store(settings) as store:
            # The production flavour: the near-cache serving in front of Redis.
            await near_ready(store)
            yield store
    finally:
        client = Redis.from_url(base_redis_url())
        pattern = scan_pattern(settings.cache_key_prefix)
        names = [k async for k in client.scan_iter(match=pattern, count=1000)]
        if names:
            await client.delete(*names)
        await client.aclose()


@pytest.fixture(scope="session")
def store_sqlite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store-embedded")


@pytest.fixture(scope="session")
async def memlayer_sqlite_store(store_sqlite_dir: Path) -> AsyncIterator[MemlayerStore]:
    # No database URL: the embedded default, migrated by open_store itself.
    async with open_store(Settings(data_dir=store_sqlite_dir)) as store:
        yield store


@pytest.fixture(scope="session")
async def store_sqlite_engine(
    memlayer_sqlite_store: MemlayerStore, store_sqlite_dir: Path
) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(Settings(data_dir=store_sqlite_dir).resolved_database_url())
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def peer_dsn() -> AsyncIterator[str]:
    url = await create_database("memlayer_peer")
    try:
        dsn = psycopg_dsn(url)
        async with AsyncPostgresStore.from_conn_string(dsn) as store:
            await store.setup()
        yield dsn
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
async def peer_store(peer_dsn: str) -> AsyncIterator[AsyncPostgresStore]:
    async with AsyncPostgresStore.from_conn_string(peer_dsn) as store:
        yield store


@pytest.fixture(scope="session")
async def peer_store_omitting_expired(peer_dsn: str) -> AsyncIterator[AsyncPostgresStore]:
    async with AsyncPostgresStore.from_conn_string(peer_dsn, ttl={"omit_expired": True}) as store:
        yield store
