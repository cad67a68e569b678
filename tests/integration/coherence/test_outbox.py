"""Durable invalidation: every write owes Redis its version in Postgres until Redis has it.

Two or more nodes ("processes": own engine, own Redis connection through a proxy the
test owns) on one database and one Redis. Convergence is asserted with a deadline equal
to the coherence bound (MEMLAYER_COHERENCE_BOUND_MS, 2 s by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from memlayer.cache import WriteThrough
from memlayer.memory import outbox
from memlayer.memory.drainer import OutboxDrainer
from memlayer.memory.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE
from memlayer.records import EntityInput, LoadSource
from memlayer.settings import Settings
from tests.support.coherence import (
    Node,
    converges,
    create_user,
    never_older,
    outbox_rows,
    outbox_size,
    start_node,
)
from tests.support.metrics import current


@pytest.fixture
async def node_factory(coherence_settings: Settings, shared_redis_port: int):
    made: list[Node] = []

    async def make(*, background: bool = True, **overrides: Any) -> Node:
        node = await start_node(
            coherence_settings.model_copy(update=overrides),
            shared_redis_port,
            background=background,
        )
        made.append(node)
        return node

    yield make
    for node in made:
        await node.aclose()


async def reconnected(node: Node) -> None:
    """After a cut, the pool's old connections fail once each (no retries by design)."""
    for _ in range(node.settings.redis_max_connections + 1):
        if await node.cache.ping():
            return
    raise AssertionError("Redis does not answer through the proxy again")


@contextmanager
def statements(node: Node) -> Iterator[list[str]]:
    """Every SQL statement the node's engine sends (BEGIN/COMMIT are not statements)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(node.database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(node.database.engine.sync_engine, "before_cursor_execute", record)


async def test_each_kind_of_write_owes_its_version_in_the_same_statement_as_the_bump(
    node_factory,
) -> None:
    """Postgres statements per write, by kind, with the outbox: the same as without it."""
    node = await node_factory(background=False, outbox_ack_interval_ms=3_600_000)
    uid = await create_user(node.database)
    await node.load(uid)  # the first connection and the cache's epoch, once per process
    service = node.service
    counts = {}
    with statements(node) as seen:
        memory = await service.record_turn(
            uid,
            chat_session_id=None,
            summary="강남구 전세",
            preferences={"region": "강남구"},
            entities=[EntityInput("district", "강남구")],
        )
    counts["record_turn (memory + preferences + entities)"] = len(seen)
    assert await outbox_rows(node.database, str(uid)) == [(str(uid), 1)]
    with statements(node) as seen:
        await service.upsert_preferences(uid, {"budget": 5})
    counts["upsert_preferences"] = len(seen)
    with statements(node) as seen:
        await service.record_entities(uid, [EntityInput("district", "마포구")])
    counts["record_entities"] = len(seen)
    assert memory is not None
    with statements(node) as seen:
        await service.delete_memory(uid, memory.id)
    counts["delete_memory"] = len(seen)
    with statements(node) as seen:
        await service.forget_user(uid)
    counts["forget_user"] = len(seen)

    # bump (+ outbox row) / the write's own statements / the context read-back
    assert counts == {
        "record_turn (memory + preferences + entities)": 5,
        "upsert_preferences": 3,
        "record_entities": 3,
        "delete_memory": 3,
        "forget_user": 5,
    }
    assert await outbox_rows(node.database, str(uid)) == [(str(uid), 5)]
    assert node.service.acks.waiting == 1, "five acks of one user fold into one"
    with statements(node) as seen:
        await node.service.acks.flush()
    assert len(seen) == 1, "one DELETE for the whole batch"
    assert await outbox_rows(node.database, str(uid)) == []


async def test_a_rolled_back_write_owes_nothing(node_factory) -> None:
    node = await node_factory(background=False, outbox_ack_interval_ms=3_600_000)
    uid = await create_user(node.database)
    with pytest.raises(Exception, match=r"not found"):
        await node.service.delete_memory(uid, 999_999_999)
    assert await outbox_rows(node.database, str(uid)) == []


async def test_a_partitioned_writer_s_write_reaches_the_others_within_the_bound(
    node_factory,
) -> None:
    writer, reader = await node_factory(), await node_factory()
    uid = await create_user(writer.database)
    await writer.service.save_conversation_memory(uid, None, "before")
    assert (await reader.load(uid)).source is LoadSource.CACHE  # v1 cached everywhere
    bound = writer.settings.coherence_bound_ms / 1000

    writer.proxy.refuse()  # the writer cannot reach Redis; the reader still can
    await writer.service.save_conversation_memory(uid, None, "after")  # acknowledged

    assert await outbox_rows(writer.database, str(uid)) == [(str(uid), 2)]
    took = await converges(lambda: reader.load(uid), 2, bound)
    await never_older(lambda: reader.load(uid), 2, 20)
    assert (await writer.load(uid)).context.version == 2, "the writer reads its own write"
    assert took <= bound


async def test_an_uncached_process_s_writes_are_drained_by_the_cached_ones(node_factory) -> None:
    """A batch job with MEMLAYER_CACHE_ENABLED=false still owes Redis its writes."""
    from memlayer.memory.service import LongTermMemoryService

    reader = await node_factory()
    uid = await create_user(reader.database)
    await reader.service.save_conversation_memory(uid, None, "cached")
    assert (await reader.load(uid)).source is LoadSource.CACHE
    uncached = LongTermMemoryService(reader.database, reader.settings)  # no cache tier

    await uncached.save_conversation_memory(uid, None, "written elsewhere")

    await converges(lambda: reader.load(uid), 2, reader.settings.coherence_bound_ms / 1000)
    await uncached.aclose()


async def test_a_drain_that_cannot_reach_redis_rolls_back_and_the_rows_stay(node_factory) -> None:
    node = await node_factory(background=False, outbox_grace_ms=0, breaker_failure_threshold=100)
    uid = await create_user(node.database)
    await node.load(uid)  # a running process: it knows the generation
    node.proxy.refuse()
    await node.service.save_conversation_memory(uid, None, "owed")
    drainer = OutboxDrainer(node.database, node.settings)
    drainer.register(outbox.CONTEXT_FAMILY, node.cache, lambda: not node.cache.breaker_open)

    failed = await drainer.drain_once()

    assert failed.failed and failed.drained == 0
    assert await outbox_rows(node.database, str(uid)) == [(str(uid), 1)]
    node.proxy.forward()
    await reconnected(node)
    drained = await drainer.drain_once()
    assert drained.drained >= 1
    assert await outbox_rows(node.database, str(uid)) == []


async def test_rows_younger_than_the_grace_period_are_left_to_their_writer(node_factory) -> None:
    node = await node_factory(background=False, outbox_grace_ms=3_600_000)
    uid = await create_user(node.database)
    node.proxy.refuse()
    await node.service.save_conversation_memory(uid, None, "owed")
    node.proxy.forward()
    drainer = OutboxDrainer(node.database, node.settings)
    drainer.register(outbox.CONTEXT_FAMILY, node.cache, lambda: True)

    assert (await drainer.drain_once()).drained == 0
    assert await outbox_rows(node.database, str(uid)) == [(str(uid), 1)]


async def test_drainers_of_several_processes_take_each_row_once(node_factory) -> None:
    first = await node_factory(background=False, outbox_grace_ms=0, outbox_drain_batch=50)
    second = await node_factory(background=False, outbox_grace_ms=0, outbox_drain_batch=50)
    users = [await create_user(first.database) for _ in range(120)]
    async with first.database.transaction() as session:
        for uid in users:  # writes whose writers all died before their write-through
            await outbox.record(session, outbox.CONTEXT_FAMILY, str(uid), 1)
    owed = await outbox_size(first.database)
    assert owed >= len(users)
    drainers = []
    for node in (first, second):
        drainer = OutboxDrainer(node.database, node.settings)
        drainer.register(outbox.CONTEXT_FAMILY, node.cache, lambda: True)
        drainers.append(drainer)

    total = 0
    while True:
        rounds = await asyncio.gather(*(d.drain_once() for d in drainers))
        drained = sum(r.drained for r in rounds)
        assert not any(r.failed for r in rounds)
        if drained == 0:
            break
        total += drained

    assert total == owed, "SKIP LOCKED: no row drained twice, none left"
    assert await outbox_size(first.database) == 0


async def test_the_backlog_and_its_oldest_age_are_exported(node_factory) -> None:
    node = await node_factory(background=False, outbox_grace_ms=3_600_000)
    uid = await create_user(node.database)
    node.proxy.refuse()
    await node.service.save_conversation_memory(uid, None, "owed")
    drainer = OutboxDrainer(node.database, node.settings)

    backlog = await drainer.count_backlog()

    assert backlog is not None and backlog.rows >= 1 and backlog.oldest_age_s >= 0
    assert current(OUTBOX_BACKLOG) == backlog.rows
    assert current(OUTBOX_OLDEST_AGE) == pytest.approx(backlog.oldest_age_s)


async def test_a_write_through_says_whether_redis_holds_the_write(node_factory) -> None:
    node = await node_factory(background=False, breaker_failure_threshold=100)
    uid = await create_user(node.database)
    context = (await node.load(uid)).context
    newer = type(context)(uid, 5)
    assert await node.cache.write_through(newer) is WriteThrough.STORED
    assert await node.cache.write_through(type(context)(uid, 4)) is WriteThrough.NEWER
    node.proxy.refuse()
    assert await node.cache.write_through(type(context)(uid, 6)) is WriteThrough.DEFERRED
