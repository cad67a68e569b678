"""LongTermMemoryService on Postgres alone: the source-of-truth behaviour."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest
from sqlalchemy import func, insert, select, text

from memlayer.memory.db import Database
from memlayer.memory.errors import InvalidMemory, MemoryNotFound, StoreUnavailable, UnknownUser
from memlayer.memory.metrics import DB_QUERIES
from memlayer.memory.models import ConversationMemory, MemoryVersion, User
from memlayer.memory.service import LongTermMemoryService
from memlayer.metrics import current
from memlayer.records import EntityInput, LoadSource
from memlayer.settings import Settings


def _queries() -> float:
    return current(DB_QUERIES)


async def test_saved_memories_load_newest_first(pg_service, make_user):
    uid = await make_user()
    for i in range(3):
        await pg_service.save_conversation_memory(
            uid, None, f"summary {i}", "market", ["강남구"], 2
        )
    memories = await pg_service.load_recent_memories(uid, 5)
    assert [m.summary for m in memories] == ["summary 2", "summary 1", "summary 0"]
    assert memories[0].entities == ("강남구",)
    assert memories[0].created_at.tzinfo is not None


async def test_limit_is_clamped_to_the_cap_and_negative_is_an_error(
    pg_service, make_user, settings
):
    uid = await make_user()
    for i in range(settings.memory_context_size + 3):
        await pg_service.save_conversation_memory(uid, None, f"m{i}", "loan")
    assert len(await pg_service.load_recent_memories(uid, 1000)) == settings.memory_context_size
    assert await pg_service.load_recent_memories(uid, 0) == []
    assert len(await pg_service.load_recent_memories(uid, 2)) == 2
    with pytest.raises(InvalidMemory, match="negative"):
        await pg_service.load_recent_memories(uid, -1)


async def test_load_context_has_memories_preferences_entities_and_version(pg_service, make_user):
    uid = await make_user()
    empty = await pg_service.load_context(uid)
    assert empty.context.version == 0 and empty.context.memories == ()
    assert empty.source is LoadSource.DATABASE
    await pg_service.save_conversation_memory(uid, None, "아파트 시세 문의", "market", ["아파트"])
    await pg_service.upsert_preferences(uid, {"region": "서울 강남구", "budget": 900_000_000})
    await pg_service.record_entities(uid, [EntityInput("region", "강남구")] * 2)
    await pg_service.record_entities(
        uid, [EntityInput("region", "강남구"), EntityInput("type", "아파트")]
    )
    ctx = (await pg_service.load_context(uid)).context
    assert ctx.version == 4
    assert [m.summary for m in ctx.memories] == ["아파트 시세 문의"]
    assert ctx.preferences == {"region": "서울 강남구", "budget": 900_000_000}
    assert [(e.type, e.name, e.mention_count) for e in ctx.entities] == [
        ("region", "강남구", 3),
        ("type", "아파트", 1),
    ]


async def test_preferences_upsert_by_key(pg_service, make_user):
    uid = await make_user()
    await pg_service.upsert_preferences(uid, {"region": "마포구", "rooms": 2})
    await pg_service.upsert_preferences(uid, {"region": "용산구"})
    ctx = (await pg_service.load_context(uid)).context
    assert ctx.preferences == {"region": "용산구", "rooms": 2}


async def test_entity_mentions_go_up_and_last_seen_moves(pg_service, make_user):
    uid = await make_user()
    await pg_service.record_entities(uid, [EntityInput("region", "송파구")])
    first = (await pg_service.load_context(uid)).context.entities[0]
    await pg_service.record_entities(uid, [EntityInput("region", "송파구")])
    second = (await pg_service.load_context(uid)).context.entities[0]
    assert (first.mention_count, second.mention_count) == (1, 2)
    assert second.last_seen > first.last_seen


async def test_every_write_bumps_the_version(pg_service, make_user):
    uid = await make_user()
    versions = [
        await pg_service.upsert_preferences(uid, {"a": 1}),
        await pg_service.record_entities(uid, [EntityInput("t", "n")]),
    ]
    memory = await pg_service.save_conversation_memory(uid, None, "s")
    versions.append((await pg_service.load_context(uid)).context.version)
    versions.append(await pg_service.delete_memory(uid, memory.id))
    versions.append(await pg_service.forget_user(uid))
    assert versions == [1, 2, 3, 4, 5]


async def test_concurrent_saves_for_one_user_keep_versions_strictly_increasing(
    database, settings, make_user
):
    uid = await make_user()

    async def save(i: int) -> int:
        # One service per task: nothing shared but the database, like separate processes.
        service = LongTermMemoryService(database, settings)
        await service.save_conversation_memory(uid, None, f"concurrent {i}")
        return 0

    await asyncio.gather(*(save(i) for i in range(25)))
    async with database.sessionmaker() as db:
        version = await db.scalar(select(MemoryVersion.version).where(MemoryVersion.user_id == uid))
        count = await db.scalar(
            select(func.count())
            .select_from(ConversationMemory)
            .where(ConversationMemory.user_id == uid)
        )
    assert version == 25, "every save bumps exactly once: no lost update"
    assert count == 25


async def test_concurrent_writers_each_get_a_distinct_version(database, settings, make_user):
    uid = await make_user()
    service = LongTermMemoryService(database, settings)
    versions = await asyncio.gather(
        *(service.upsert_preferences(uid, {f"k{i}": i}) for i in range(20))
    )
    assert sorted(versions) == list(range(1, 21))


async def test_delete_memory_only_of_the_owner(pg_service, make_user):
    alice, bob = await make_user(), await make_user()
    memory = await pg_service.save_conversation_memory(alice, None, "alice's memory")
    with pytest.raises(MemoryNotFound):
        await pg_service.delete_memory(bob, memory.id)
    assert len(await pg_service.load_recent_memories(alice, 5)) == 1
    await pg_service.delete_memory(alice, memory.id)
    assert await pg_service.load_recent_memories(alice, 5) == []
    with pytest.raises(MemoryNotFound):
        await pg_service.delete_memory(alice, memory.id)


async def test_forget_user_removes_everything_of_that_user_only(pg_service, make_user):
    alice, bob = await make_user(), await make_user()
    for uid in (alice, bob):
        await pg_service.record_turn(
            uid,
            chat_session_id=None,
            summary="turn",
            preferences={"p": 1},
            entities=[EntityInput("region", "서초구")],
        )
    await pg_service.forget_user(alice)
    gone = (await pg_service.load_context(alice)).context
    kept = (await pg_service.load_context(bob)).context
    assert (gone.memories, dict(gone.preferences), gone.entities) == ((), {}, ())
    assert len(kept.memories) == 1 and kept.preferences == {"p": 1} and len(kept.entities) == 1
    assert gone.version == 2


async def test_record_turn_is_one_transaction_and_one_version(pg_service, make_user):
    uid = await make_user()
    record = await pg_service.record_turn(
        uid,
        chat_session_id=None,
        summary="대출 한도 문의",
        intent="loan",
        memory_entities=["주택담보대출"],
        message_count=2,
        preferences={"loan_type": "주담대"},
        entities=[EntityInput("loan", "주택담보대출")],
    )
    ctx = (await pg_service.load_context(uid)).context
    assert ctx.version == 1
    assert ctx.memories[0].id == record.id and ctx.memories[0].intent == "loan"
    assert ctx.preferences == {"loan_type": "주담대"}


async def test_bad_input_gets_typed_errors(pg_service, make_user, settings):
    uid = await make_user()
    with pytest.raises(UnknownUser):
        await pg_service.save_conversation_memory(10**9, None, "nobody")
    with pytest.raises(UnknownUser):
        await pg_service.load_context(10**9)
    with pytest.raises(InvalidMemory, match="maximum"):
        await pg_service.save_conversation_memory(
            uid, None, "x" * (settings.summary_max_length + 1)
        )
    with pytest.raises(InvalidMemory, match="JSON"):
        await pg_service.upsert_preferences(uid, {"when": datetime.now()})
    with pytest.raises(InvalidMemory, match="JSON"):
        await pg_service.upsert_preferences(uid, {"obj": object()})
    with pytest.raises(InvalidMemory):
        await pg_service.save_conversation_memory(uid, "not-a-uuid", "s")
    with pytest.raises(InvalidMemory):
        await pg_service.load_context("42")  # type: ignore[arg-type]
    with pytest.raises(InvalidMemory, match="bytes"):
        await pg_service.upsert_preferences(
            uid, {"big": "x" * (settings.preference_value_max_bytes + 1)}
        )
    assert (await pg_service.load_context(uid)).context.version == 0, "nothing was written"


async def test_anonymous_user_never_touches_the_database(settings):
    # A service whose database does not exist: any access at all would raise.
    nowhere = Database.from_settings(settings, url="postgresql+asyncpg://postgres@127.0.0.1:1/none")
    service = LongTermMemoryService(nowhere, settings)
    before = _queries()
    result = await service.load_context(None, 5)
    assert result.source is LoadSource.NONE and result.context.memories == ()
    assert await service.load_recent_memories(None, 5) == []
    assert await service.save_conversation_memory(None, None, "anon") is None
    assert await service.upsert_preferences(None, {"a": 1}) == 0
    assert await service.record_entities(None, [EntityInput("t", "n")]) == 0
    assert await service.forget_user(None) == 0
    assert _queries() == before
    await nowhere.aclose()


async def test_postgres_down_is_a_typed_error_not_a_hang(settings):
    nowhere = Database.from_settings(settings, url="postgresql+asyncpg://postgres@127.0.0.1:1/none")
    service = LongTermMemoryService(nowhere, settings)
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(service.load_context(1), timeout=10)
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(service.save_conversation_memory(1, None, "s"), timeout=10)
    await nowhere.aclose()


async def test_chat_session_link_is_kept(pg_service, make_user, database):
    from memlayer.memory.history import ChatHistory

    uid = await make_user()
    conversation = await ChatHistory(database).start_conversation(uid, "첫 질문")
    memory = await pg_service.save_conversation_memory(uid, conversation, "s")
    assert memory.chat_session_id == conversation
    cached = (await pg_service.load_context(uid)).context.memories[0]
    assert cached.chat_session_id == conversation


async def test_recent_memories_query_uses_the_index(database: Database, settings: Settings):
    """EXPLAIN on a table big enough for the planner to care: no sequential scan."""
    async with database.transaction() as db:
        users = (
            (
                await db.execute(
                    insert(User).returning(User.id),
                    [{"email": f"bulk-{uuid.uuid4().hex}@example.test"} for _ in range(200)],
                )
            )
            .scalars()
            .all()
        )
        await db.execute(
            insert(ConversationMemory),
            [
                {"user_id": u, "summary": f"bulk {i}", "entities": [], "message_count": 1}
                for u in users
                for i in range(100)
            ],
        )
    async with database.engine.connect() as conn:
        await conn.execute(text("ANALYZE conversation_memories"))
        plan = "\n".join(
            r[0]
            for r in await conn.execute(
                text(
                    "EXPLAIN SELECT id, summary FROM conversation_memories WHERE user_id = :u "
                    "ORDER BY created_at DESC, id DESC LIMIT 5"
                ),
                {"u": users[7]},
            )
        )
    assert "ix_conversation_memories_user_recent" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "Sort" not in plan, f"the index order must match the query's ORDER BY:\n{plan}"


def _writes(outcome: str) -> float:
    from memlayer.memory.metrics import MEMORY_WRITES

    return current(MEMORY_WRITES.labels(outcome))


async def test_a_refused_write_is_rejected_not_a_store_failure(pg_service, make_user):
    """The write-failure alert must only see the store failing, not callers' mistakes."""
    uid = await make_user()
    errors, rejected = _writes("error"), _writes("rejected")
    with pytest.raises(MemoryNotFound):
        await pg_service.delete_memory(uid, 10**12)
    with pytest.raises(UnknownUser):
        await pg_service.upsert_preferences(10**9, {"a": 1})
    assert (_writes("error"), _writes("rejected")) == (errors, rejected + 2)
