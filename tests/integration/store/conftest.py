"""memlayer's store on a real, migrated Postgres database of its own; each test opens the
store it needs (settings and TTLs differ) and empties the tables first.

``open_pg_store`` opens the store uncached (``cache_enabled=False``): these tests specify
what the store sends to Postgres and age rows in SQL behind its back. ``open_cached_store``
opens it on Postgres + the real Redis, every handle of one test under one key prefix (the
test's own, removed afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import pytest
from langgraph.store.base import TTLConfig
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from memlayer.cache.keys import scan_pattern
from memlayer.settings import Settings
from memlayer.store import MemlayerStore, open_store
from tests.support.services import base_redis_url, create_database, drop_database, migrate
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
        given: dict[str, object] = {"cache_enabled": False} | overrides
        settings = Settings(database_url=store_url, **given)  # type: ignore[arg-type]
        return open_store(settings, ttl=ttl)

    return opener


@pytest.fixture
async def cached_settings(store_url: str, admin_engine: AsyncEngine) -> AsyncIterator[Settings]:
    """Postgres + Redis under a key prefix of the test's own (its keys removed afterwards)."""
    await empty_memlayer_tables(admin_engine)
    settings = Settings(
        database_url=store_url,
        redis_url=base_redis_url(),
        cache_key_prefix=f"memlayer-store-{uuid.uuid4().hex[:8]}",
    )
    yield settings
    client = Redis.from_url(base_redis_url())
    names = [k async for k in client.scan_iter(match=scan_pattern(settings.cache_key_prefix))]
    if names:
        await client.delete(*names)
    await client.aclose()


@pytest.fixture
def open_cached_store(cached_settings: Settings) -> OpenStore:
    """``open_cached_store(ttl=..., **settings)``: a cached store on the test database."""

    def opener(ttl: TTLConfig | None = None, **overrides: object) -> AbstractAsyncContextManager:
        return open_store(cached_settings.model_copy(update=overrides), ttl=ttl)

    return opener


@pytest.fixture
async def store(open_pg_store: OpenStore) -> AsyncIterator[MemlayerStore]:
    async with open_pg_store() as opened:
        yield opened


@pytest.fixture
def redis_port() -> int:
    """The test Redis's port (for proxies put in front of it)."""
    from sqlalchemy.engine import make_url

    return make_url(base_redis_url()).port or 6379
