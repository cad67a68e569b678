"""Fixtures of the coherence suite: a database of its own per module.

Outbox rows are drained by any process on the same database; the session database is
shared with the API suite's live server (another key prefix), whose drainer would take
this suite's rows. So each module migrates its own database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from memlayer.cache.keys import scan_pattern
from memlayer.memory.db import Database
from memlayer.settings import Settings
from tests.support.services import base_redis_url, create_database, drop_database, migrate


@pytest.fixture(scope="module")
async def coherence_url() -> AsyncIterator[str]:
    url = await create_database("memlayer_coh")
    try:
        await migrate(url)
        yield url
    finally:
        await drop_database(url)


@pytest.fixture
async def coherence_settings(coherence_url: str) -> AsyncIterator[Settings]:
    """Default coherence settings (the bound is what the tests assert), own key prefix
    (its keys are removed afterwards)."""
    settings = Settings(
        database_url=coherence_url,
        redis_url=base_redis_url(),
        cache_key_prefix=f"memlayer-coh-{uuid.uuid4().hex[:8]}",
        jwt_secret="coherence-" + uuid.uuid4().hex,
        consistency_check_interval_ms=0,  # the checker's own tests turn it on
    )
    yield settings
    client = Redis.from_url(base_redis_url())
    names = [k async for k in client.scan_iter(match=scan_pattern(settings.cache_key_prefix))]
    if names:
        await client.delete(*names)
    await client.aclose()


@pytest.fixture(scope="module")
async def coherence_db(coherence_url: str) -> AsyncIterator[Database]:
    database = Database.from_settings(Settings(database_url=coherence_url))
    yield database
    await database.aclose()


@pytest.fixture
def shared_redis_port() -> int:
    from sqlalchemy.engine import make_url

    return make_url(base_redis_url()).port or 6379
