"""A COMMIT whose outcome the writer cannot know, and retries that store a turn once.

The writer's Postgres connection runs through a proxy the test owns; ``cut_at(b"COMMIT")``
forwards the COMMIT and swallows the server's reply (the write IS saved, the writer never
hears), or drops the COMMIT itself (the write is NOT saved). Either way the writer says
"outcome unknown", the cache gets a marker at the bumped version, and a retry with the
same turn id leaves exactly one memory.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from memlayer.memory.db import Database
from memlayer.memory.errors import InvalidMemory, WriteOutcomeUnknown
from memlayer.memory.metrics import MEMORY_WRITES
from memlayer.memory.models import ConversationMemory, MemoryVersion
from memlayer.memory.service import LongTermMemoryService
from memlayer.records import LoadSource
from memlayer.settings import Settings
from tests.support.cache_values import header_version
from tests.support.coherence import Node, converges, create_user, never_older, start_node
from tests.support.metrics import current
from tests.support.tcp_proxy import ChaosProxy


@pytest.fixture
async def pair(
    coherence_settings: Settings, shared_redis_port: int
) -> AsyncIterator[tuple[Node, Node, ChaosProxy]]:
    """A writer whose Postgres link the test can cut mid-COMMIT, and a reader."""
    url = make_url(coherence_settings.database_url or "")
    pg = await ChaosProxy(url.port or 5432, url.host or "127.0.0.1").start()
    through = url.set(host="127.0.0.1", port=pg.port).render_as_string(hide_password=False)
    writer = await start_node(
        coherence_settings.model_copy(update={"database_url": through}), shared_redis_port
    )
    reader = await start_node(coherence_settings, shared_redis_port)
    yield writer, reader, pg
    await writer.aclose()
    await reader.aclose()
    await pg.aclose()


async def _memories(database: Database, user_id: int) -> int:
    async with database.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).where(ConversationMemory.user_id == user_id))
    return int(count or 0)


async def _version(database: Database, user_id: int) -> int:
    async with database.engine.connect() as conn:
        version = await conn.scalar(
            select(MemoryVersion.version).where(MemoryVersion.user_id == user_id)
        )
    return int(version or 0)


async def _turn(service: LongTermMemoryService, user_id: int, turn_id: Any, text: str) -> Any:
    return await service.record_turn(user_id, chat_session_id=None, summary=text, turn_id=turn_id)


@pytest.mark.parametrize("saved", [True, False], ids=["commit-reached-postgres", "commit-lost"])
async def test_an_unknown_commit_outcome_is_said_cached_safely_and_the_retry_stores_once(
    pair: tuple[Node, Node, ChaosProxy], saved: bool
) -> None:
    writer, reader, pg = pair
    uid = await create_user(reader.database)
    await _turn(writer.service, uid, uuid.uuid4(), "first turn")
    assert (await reader.load(uid)).source is LoadSource.CACHE  # v1 cached everywhere
    unknown = current(MEMORY_WRITES.labels("unknown"))
    turn = uuid.uuid4()

    pg.cut_at(b"COMMIT", deliver=saved)
    with pytest.raises(WriteOutcomeUnknown, match="same turn_id is stored at most once"):
        await _turn(writer.service, uid, turn, "second turn")

    assert pg.cut_done.is_set()
    assert current(MEMORY_WRITES.labels("unknown")) == unknown + 1
    prefix = writer.settings.cache_key_prefix
    assert await header_version(reader.client, prefix, uid) == 2, "a marker at the bump"
    assert await _memories(reader.database, uid) == (2 if saved else 1)
    if saved:
        # Every process converges on the saved write within the bound (here: at once,
        # the marker was installed before the writer answered).
        bound = reader.settings.coherence_bound_ms / 1000
        await converges(lambda: reader.load(uid), 2, bound)
        await never_older(lambda: reader.load(uid), 2, 10)

    # The client retries the same turn (on any process): stored exactly once.
    retried = await _turn(reader.service, uid, turn, "second turn")
    assert retried is not None and retried.summary == "second turn"
    again = await _turn(reader.service, uid, turn, "second turn")
    assert again == retried, "a second retry returns the same stored memory"
    assert await _memories(reader.database, uid) == 2
    assert await _version(reader.database, uid) == 2, "retries bump no version"
    final = await reader.load(uid)
    assert final.context.version == 2
    assert final.context.memories[0].summary == "second turn"


async def test_concurrent_retries_of_one_turn_store_it_once(
    pair: tuple[Node, Node, ChaosProxy],
) -> None:
    import asyncio

    _writer, reader, _pg = pair
    uid = await create_user(reader.database)
    turn = uuid.uuid4()
    duplicates = current(MEMORY_WRITES.labels("duplicate"))

    results = await asyncio.gather(*(_turn(reader.service, uid, turn, "once") for _ in range(5)))

    assert len({r.id for r in results if r is not None}) == 1
    assert await _memories(reader.database, uid) == 1
    assert await _version(reader.database, uid) == 1
    assert current(MEMORY_WRITES.labels("duplicate")) == duplicates + 4


async def test_distinct_turn_ids_are_distinct_memories_and_a_bad_one_is_refused(
    pair: tuple[Node, Node, ChaosProxy],
) -> None:
    _writer, reader, _pg = pair
    uid = await create_user(reader.database)
    await _turn(reader.service, uid, uuid.uuid4(), "one")
    await _turn(reader.service, uid, str(uuid.uuid4()), "two")
    await _turn(reader.service, uid, None, "three")
    assert await _memories(reader.database, uid) == 3
    with pytest.raises(InvalidMemory, match="turn_id must be a UUID"):
        await _turn(reader.service, uid, "not-a-uuid", "four")


async def test_the_same_turn_id_of_another_user_is_theirs_alone(
    pair: tuple[Node, Node, ChaosProxy],
) -> None:
    _writer, reader, _pg = pair
    first, second = await create_user(reader.database), await create_user(reader.database)
    turn = uuid.uuid4()
    await _turn(reader.service, first, turn, "first's")
    stored = await _turn(reader.service, second, turn, "second's")
    assert stored is not None and stored.summary == "second's"
    assert await _memories(reader.database, second) == 1


async def test_the_workflow_says_unknown_and_the_retried_turn_is_remembered_once(
    coherence_settings: Settings,
) -> None:
    """Planning reads through the "replica" (direct), so only the save's COMMIT is cut."""
    from memlayer.supervisor import ChatWorkflow, ListEmitter

    url = make_url(coherence_settings.database_url or "")
    pg = await ChaosProxy(url.port or 5432, url.host or "127.0.0.1").start()
    through = url.set(host="127.0.0.1", port=pg.port).render_as_string(hide_password=False)
    settings = coherence_settings.model_copy(
        update={"database_url": through, "database_replica_url": coherence_settings.database_url}
    )
    database = Database.from_settings(settings)
    service = LongTermMemoryService(database, settings)
    workflow = ChatWorkflow(service)
    uid = await create_user(database)
    turn_id = str(uuid.uuid4())
    try:
        pg.cut_at(b"COMMIT")  # the save reaches Postgres; its reply never comes back
        first = ListEmitter()
        answered = await workflow.run_turn(
            query="강남구 아파트 시세 알려줘",
            session_id="s-1",
            user_id=uid,
            chat_session_id=None,
            emitter=first,
            turn_id=turn_id,
        )
        [unavailable] = first.of_type("memory_unavailable")
        assert (unavailable["stage"], unavailable["outcome"]) == ("save", "unknown")
        assert unavailable["error"] == "WriteOutcomeUnknown" and answered.response
        assert first.of_type("final_response")[0]["turn_id"] == turn_id

        again = ListEmitter()
        await workflow.run_turn(
            query="강남구 아파트 시세 알려줘",
            session_id="s-1",
            user_id=uid,
            chat_session_id=None,
            emitter=again,
            turn_id=turn_id,
        )
        assert not again.of_type("memory_unavailable")
        assert await _memories(database, uid) == 1
    finally:
        await service.aclose()
        await database.aclose()
        await pg.aclose()
