"""A lagging read replica never breaks read-your-writes and is never cached.

The "replica" is a database cloned from the primary with CREATE DATABASE ... TEMPLATE
before the writes below: it lags forever, the worst a replica can do. Fills may read it
only when its answer is at least the version the cache knows of (a marker in Redis, a
write this process acknowledged); loads of this process's own unflushed writes go to
the primary directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from memlayer.cache.codec import decode
from memlayer.memory.db import Database
from memlayer.memory.metrics import REPLICA_DISCARDED
from memlayer.memory.service import LongTermMemoryService
from memlayer.records import LoadSource
from memlayer.settings import Settings
from tests.support.cache_values import cached_version, raw_value
from tests.support.coherence import Node, converges, create_user, start_node
from tests.support.metrics import current
from tests.support.services import (
    base_database_url,
    base_redis_url,
    create_database,
    drop_database,
    migrate,
)


def _admin_dsn() -> str:
    url = make_url(base_database_url()).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@pytest.fixture
async def lagging(
    coherence_settings: Settings, shared_redis_port: int
) -> AsyncIterator[tuple[Node, Node, int]]:
    """(writer, reader with the lagging replica, a user at v1 on both databases)."""
    primary = await create_database("memlayer_primary")
    replica = make_url(primary).set(database=f"{make_url(primary).database}_replica")
    replica_url = replica.render_as_string(hide_password=False)
    await migrate(primary)
    settings = coherence_settings.model_copy(update={"database_url": primary})
    seed = Database.from_settings(settings)
    uid = await create_user(seed)
    await LongTermMemoryService(seed, settings).save_conversation_memory(uid, None, "v1")
    await seed.aclose()
    admin = await asyncpg.connect(_admin_dsn())
    try:  # the clone: the replica stops here (no other connection to the template)
        await admin.execute(
            f'CREATE DATABASE "{replica.database}" TEMPLATE "{make_url(primary).database}"'
        )
    finally:
        await admin.close()
    writer = await start_node(settings, shared_redis_port)
    reader = await start_node(
        settings.model_copy(update={"database_replica_url": replica_url}), shared_redis_port
    )
    yield writer, reader, uid
    await writer.aclose()
    await reader.aclose()
    await drop_database(replica_url)
    await drop_database(primary)


async def test_a_marker_from_another_process_s_write_makes_the_replica_answer_be_discarded(
    lagging: tuple[Node, Node, int],
) -> None:
    writer, reader, uid = lagging
    prefix = reader.settings.cache_key_prefix
    await writer.service.save_conversation_memory(uid, None, "v2")
    assert (await reader.load(uid)).context.version == 2  # a hit on the written context

    writer.proxy.refuse()  # its next write reaches other processes through the outbox
    await writer.service.save_conversation_memory(uid, None, "v3")
    discarded = current(REPLICA_DISCARDED)

    await converges(lambda: reader.load(uid), 3, reader.settings.coherence_bound_ms / 1000)

    assert current(REPLICA_DISCARDED) > discarded, "the replica was asked, and overruled"
    assert await cached_version(reader.client, prefix, uid) == 3, "v1 never got cached"


async def test_this_process_reads_its_own_write_even_once_evicted(
    lagging: tuple[Node, Node, int],
) -> None:
    _writer, reader, uid = lagging
    prefix = reader.settings.cache_key_prefix
    await reader.service.save_conversation_memory(uid, None, "v2")
    direct = Redis.from_url(base_redis_url())
    raw = await raw_value(direct, prefix, uid)
    assert raw is not None and decode(raw) is not None
    names = [k async for k in direct.scan_iter(match=f"{prefix}:*ctx")]
    await direct.delete(*names)  # evicted
    discarded = current(REPLICA_DISCARDED)

    result = await reader.load(uid)

    assert result.source is LoadSource.DATABASE and result.context.version == 2
    assert current(REPLICA_DISCARDED) == discarded + 1
    assert await cached_version(direct, prefix, uid) == 2
    await direct.aclose()


async def test_a_write_redis_was_not_told_about_is_read_from_the_primary_only(
    lagging: tuple[Node, Node, int],
) -> None:
    _writer, reader, uid = lagging
    reader.proxy.refuse()
    await reader.service.save_conversation_memory(uid, None, "v2")
    discarded = current(REPLICA_DISCARDED)

    result = await reader.load(uid)

    assert result.context.version == 2
    assert current(REPLICA_DISCARDED) == discarded, "the replica was not even asked"


async def test_a_user_nobody_wrote_since_is_served_by_the_replica(
    lagging: tuple[Node, Node, int],
) -> None:
    _writer, reader, uid = lagging
    discarded = current(REPLICA_DISCARDED)
    result = await reader.load(uid)
    assert result.context.version == 1 and current(REPLICA_DISCARDED) == discarded
