"""Several memlayer "processes" in one test, and the convergence check of the bound.

A :class:`Node` is what one API process holds: its own database engine, its own Redis
connection (through a :class:`ChaosProxy` the test owns, so one node can be
partitioned while the others still reach Redis), its cache, memory service and
background coherence tasks (outbox drainer, consistency sampler). Tests that need real
processes (kill -9) use ``memlayer serve`` subprocesses instead.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from memlayer.cache import ContextCache, RedisClient, make_redis_client
from memlayer.memory.coherence import CoherenceTasks, context_cache
from memlayer.memory.db import Database
from memlayer.memory.models import CacheOutbox, User
from memlayer.memory.service import LongTermMemoryService
from memlayer.records import LoadResult
from memlayer.settings import Settings
from tests.support.tcp_proxy import ChaosProxy


@dataclass
class Node:
    settings: Settings
    database: Database
    proxy: ChaosProxy
    client: RedisClient
    cache: ContextCache
    service: LongTermMemoryService
    tasks: CoherenceTasks | None

    async def load(self, user_id: int) -> LoadResult:
        return await self.service.load_context(user_id)

    async def aclose(self) -> None:
        if self.tasks is not None:
            await self.tasks.aclose()
        await self.service.aclose()
        await self.cache.aclose()
        await self.client.aclose()
        await self.database.aclose()
        await self.proxy.aclose()


async def start_node(settings: Settings, redis_port: int, *, background: bool = True) -> Node:
    """A node on ``settings``' database whose Redis traffic runs through its own proxy."""
    proxy = await ChaosProxy(redis_port).start()
    own = settings.model_copy(update={"redis_url": proxy.url})
    database = Database.from_settings(own)
    client = make_redis_client(own)
    cache = context_cache(client, database, own)
    service = LongTermMemoryService(database, own, cache)
    tasks = CoherenceTasks.start(database, cache, own) if background else None
    return Node(own, database, proxy, client, cache, service, tasks)


async def create_user(database: Database) -> int:
    async with database.transaction() as db:
        user = User(email=f"coherence-{uuid.uuid4().hex[:12]}@example.test")
        db.add(user)
        await db.flush()
        return user.id


async def outbox_rows(database: Database, entity_id: str | None = None) -> list[tuple[str, int]]:
    """(entity id, version) of the outbox rows (of one entity when given)."""
    stmt = select(CacheOutbox.entity_id, CacheOutbox.version).order_by(CacheOutbox.entity_id)
    if entity_id is not None:
        stmt = stmt.where(CacheOutbox.entity_id == entity_id)
    async with database.engine.connect() as conn:
        return [(r[0], r[1]) for r in await conn.execute(stmt)]


async def outbox_size(database: Database) -> int:
    async with database.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(CacheOutbox)) or 0)


async def converges(
    load: Callable[[], Awaitable[LoadResult]],
    version: int,
    within_s: float,
) -> float:
    """Poll ``load`` until it returns ``version`` or newer; fail past ``within_s``.

    The deadline IS the assertion (the coherence bound), so polling, not sleeping, is
    the synchronisation. Returns how long convergence took.
    """

    async def read() -> int:
        return (await load()).context.version

    return await version_converges(read, version, within_s)


async def version_converges(
    read: Callable[[], Awaitable[int]], version: int, within_s: float
) -> float:
    """:func:`converges` for anything that reads a version (an HTTP endpoint, a process)."""
    started = time.monotonic()
    seen: list[int] = []
    while True:
        current = await read()
        seen.append(current)
        if current >= version:
            return time.monotonic() - started
        if time.monotonic() - started > within_s:
            raise AssertionError(
                f"still at v{current} {within_s:.2f}s after v{version} was acknowledged "
                f"(versions seen: {sorted(set(seen))})"
            )
        await asyncio.sleep(0.02)


async def never_older_than_after(
    read: Callable[[], Awaitable[int]],
    version: int,
    *,
    since: float,
    bound_s: float,
    watch_s: float = 1.0,
) -> float:
    """Every read that starts later than ``bound_s`` after ``since`` (a monotonic time:
    the fault) returns ``version`` or newer; reads go on until ``watch_s`` past the bound.

    For faults where a fresh answer does not mean the cause is gone (Redis restored from
    an old snapshot: a load may bypass Redis once and read it again after). Returns the
    time after ``since`` of the last older answer (0.0 if none): the staleness observed.
    """
    last_older = 0.0
    while (now := time.monotonic()) < since + bound_s + watch_s:
        current = await read()
        if current < version:
            assert now <= since + bound_s, (
                f"v{current} served {now - since:.2f}s after the fault (bound {bound_s:.2f}s)"
            )
            last_older = now - since
        await asyncio.sleep(0.02)
    return last_older


async def never_older(load: Callable[[], Awaitable[LoadResult]], version: int, times: int) -> None:
    """After convergence, ``times`` more loads never go back below ``version``."""
    for _ in range(times):
        result = await load()
        assert result.context.version >= version, (result.source, result.context.version)
