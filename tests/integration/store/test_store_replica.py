"""Store fills from a lagging read replica: used only when their answer is at least the
version the process knows of (a marker in Redis, a write it acknowledged).

The "replica" is a database cloned from the primary with CREATE DATABASE ... TEMPLATE
after the first write: it lags forever, the worst a replica can do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from memlayer.settings import Settings
from memlayer.store import metrics as store_metrics
from memlayer.store import open_store
from tests.support.metrics import current
from tests.support.services import base_database_url, create_database, drop_database, migrate
from tests.support.tcp_proxy import ChaosProxy


@pytest.fixture
async def lagging(cached_settings: Settings) -> AsyncIterator[Settings]:
    """Settings on a primary holding ("lag",) k = v1, whose replica stays at v1."""
    primary = await create_database("memlayer_store_primary")
    replica = make_url(primary).set(database=f"{make_url(primary).database}_replica")
    replica_url = replica.render_as_string(hide_password=False)
    await migrate(primary)
    settings = cached_settings.model_copy(update={"database_url": primary})
    async with open_store(settings.model_copy(update={"cache_enabled": False})) as seed:
        await seed.aput(("lag",), "k", {"v": 1})
    admin_dsn = make_url(base_database_url()).set(drivername="postgresql")
    admin = await asyncpg.connect(admin_dsn.render_as_string(hide_password=False))
    try:  # the clone: the replica stops here (no other connection to the template)
        await admin.execute(
            f'CREATE DATABASE "{replica.database}" TEMPLATE "{make_url(primary).database}"'
        )
    finally:
        await admin.close()
    yield settings.model_copy(update={"database_replica_url": replica_url})
    await drop_database(replica_url)
    await drop_database(primary)


async def test_a_write_this_process_acknowledged_overrules_the_replica(
    lagging: Settings,
) -> None:
    async with open_store(lagging) as store:
        assert store.cache is not None
        await store.aput(("lag",), "k", {"v": 2})
        await store.cache.turn_over()  # evicted: the next read is a fill
        discarded = current(store_metrics.REPLICA_DISCARDED)

        item = await store.aget(("lag",), "k")

        assert item is not None and item.value == {"v": 2}
        assert current(store_metrics.REPLICA_DISCARDED) == discarded + 1
        again = await store.aget(("lag",), "k")  # and v2 is what got cached
        assert again is not None and again.value == {"v": 2}


async def test_a_marker_for_another_process_s_write_overrules_the_replica(
    lagging: Settings, redis_port: int
) -> None:
    """The reader may cache the replica's v1 at first (the write is not known yet: within
    the bound); the drainer's marker for v2 then makes the replica's answer be discarded."""
    proxy = await ChaosProxy(redis_port).start()
    primary_only = lagging.model_copy(update={"database_replica_url": None, "redis_url": proxy.url})
    try:
        async with open_store(primary_only) as writer, open_store(lagging) as reader:
            assert reader.cache is not None
            proxy.refuse()  # the writer's write reaches the reader through the outbox
            await writer.aput(("lag",), "k", {"v": 2})
            discarded = current(store_metrics.REPLICA_DISCARDED)
            bound = lagging.coherence_bound_ms / 1000
            loop = asyncio.get_running_loop()
            started = loop.time()
            while (item := await reader.aget(("lag",), "k")) is not None and item.value != {"v": 2}:
                assert loop.time() - started <= bound, "the reader still serves v1"
                await asyncio.sleep(0.02)  # polling: the deadline is the assertion
            assert current(store_metrics.REPLICA_DISCARDED) > discarded, "asked, overruled"
    finally:
        await proxy.aclose()
