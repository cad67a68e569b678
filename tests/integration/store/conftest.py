"""memlayer's store on a real, migrated Postgres database of its own; each test opens the
store it needs (settings and TTLs differ) and empties the tables first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import pytest
from langgraph.store.base import TTLConfig
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from memlayer.settings import Settings
from memlayer.store import MemlayerStore, open_store
from tests.support.services import create_database, drop_database, migrate
from tests.support.store import OpenStore, empty_memlayer_tables


@pytest.fixture(scope="session")
async def store_url() -> AsyncIterator[str]:
    url = await create_database("memlayer_store_it")
    try:
        await migrate(url)
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
async def admin_engine(store_url: str) -> AsyncIterator[AsyncEngine]:
    """A separate engine for the test's own look at the tables."""
    engine = create_async_engine(store_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def open_pg_store(store_url: str, admin_engine: AsyncEngine) -> OpenStore:
    """``open_pg_store(ttl=..., **settings)``: a store on the test database, tables emptied."""
    await empty_memlayer_tables(admin_engine)

    def opener(ttl: TTLConfig | None = None, **overrides: object) -> AbstractAsyncContextManager:
        settings = Settings(database_url=store_url, **overrides)  # type: ignore[arg-type]
        return open_store(settings, ttl=ttl)

    return opener


@pytest.fixture
async def store(open_pg_store: OpenStore) -> AsyncIterator[MemlayerStore]:
    async with open_pg_store() as opened:
        yield opened
