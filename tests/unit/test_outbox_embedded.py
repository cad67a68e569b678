"""The outbox in embedded mode: SQLite and the in-process Redis stand-in, one process.

Postgres folds the outbox row into the version bump; SQLite uses plain statements. The
behaviour is the same: a write Redis did not get stays owed until a drainer installs its
marker, and a write Redis got is acknowledged away.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import fakeredis
import pytest
from alembic import command
from sqlalchemy import select

from memlayer.cache import ContextCache
from memlayer.memory import outbox
from memlayer.memory.db import Database
from memlayer.memory.drainer import OutboxDrainer
from memlayer.memory.models import CacheOutbox, User
from memlayer.memory.service import LongTermMemoryService
from memlayer.migrations import alembic_config
from memlayer.records import LoadSource
from memlayer.settings import Settings


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[tuple[Database, Settings]]:
    settings = Settings(
        data_dir=tmp_path,
        cache_key_prefix="unit-outbox",
        outbox_grace_ms=0,
        outbox_ack_interval_ms=3_600_000,  # acknowledged only when the test flushes
        breaker_failure_threshold=100,
    )
    url = settings.resolved_database_url()
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    database = Database.from_settings(settings)
    yield database, settings
    await database.aclose()


async def _owed(database: Database) -> list[tuple[str, int]]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(select(CacheOutbox.entity_id, CacheOutbox.version))
        return [(r[0], r[1]) for r in rows]


async def _user(database: Database) -> int:
    async with database.transaction() as db:
        user = User(email=f"embedded-{uuid.uuid4().hex[:8]}@example.test")
        db.add(user)
        await db.flush()
        return user.id


async def test_a_write_redis_missed_is_owed_until_drained(
    embedded: tuple[Database, Settings],
) -> None:
    database, settings = embedded
    server = fakeredis.FakeServer()
    cache = ContextCache(fakeredis.FakeAsyncRedis(server=server), settings)
    service = LongTermMemoryService(database, settings, cache)
    uid = await _user(database)
    await service.save_conversation_memory(uid, None, "cached")
    await service.acks.flush()
    assert await _owed(database) == []

    server.connected = False
    await service.save_conversation_memory(uid, None, "missed Redis")
    assert await _owed(database) == [(str(uid), 2)]

    server.connected = True
    drainer = OutboxDrainer(database, settings)
    drainer.register(outbox.CONTEXT_FAMILY, cache, lambda: not cache.breaker_open)
    for _ in range(3):  # the stand-in's old connection fails once after the outage
        if (await drainer.drain_once()).drained:
            break
    assert await _owed(database) == []
    backlog = await drainer.count_backlog()
    assert backlog is not None and backlog.rows == 0
    other = ContextCache(fakeredis.FakeAsyncRedis(server=server), settings)
    result = await LongTermMemoryService(database, settings, other).load_context(uid)
    assert result.source is LoadSource.DATABASE and result.context.version == 2
    await cache.aclose()
    await other.aclose()
    await service.aclose()
