"""The chat workflow end to end on a real, migrated Postgres (no mocks of the database).

What it proves: memory is read in planning and written in response for signed-in users
only; anonymous and off-topic turns touch no tier at all; a memory failure never fails
a turn; events arrive in order with a type and a UTC timestamp; a session's short-term
state comes in with each turn and no workflow keeps any of it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from memlayer.memory.db import Database
from memlayer.memory.metrics import DB_QUERIES
from memlayer.memory.models import ChatSession, ConversationMemory
from memlayer.memory.service import LongTermMemoryService
from memlayer.settings import Settings
from memlayer.supervisor import ChatWorkflow, ListEmitter
from memlayer.supervisor.state import RECENT_TURNS_KEPT

MakeUser = Callable[[], Awaitable[int]]
UNREACHABLE_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/none"


def _db_queries() -> float:
    return sum(
        s.value for m in DB_QUERIES.collect() for s in m.samples if s.name.endswith("_total")
    )


async def _memory_rows(database: Database, user_id: int | None = None) -> int:
    statement = select(func.count()).select_from(ConversationMemory)
    if user_id is not None:
        statement = statement.where(ConversationMemory.user_id == user_id)
    async with database.sessionmaker() as session:
        return (await session.execute(statement)).scalar_one()


def _session() -> str:
    return f"session-{uuid.uuid4().hex}"


async def _chat_session(database: Database, user_id: int) -> str:
    async with database.transaction() as session:
        chat = ChatSession(user_id=user_id)
        session.add(chat)
        await session.flush()
        return str(chat.session_id)


@pytest.fixture
def workflow(pg_service: LongTermMemoryService) -> ChatWorkflow:
    return ChatWorkflow(pg_service)


@pytest.fixture
async def unreachable_service(settings: Settings) -> AsyncIterator[LongTermMemoryService]:
    database = Database.from_settings(settings, url=UNREACHABLE_DATABASE)
    yield LongTermMemoryService(database, settings)
    await database.aclose()


async def test_second_turn_loads_the_first_and_the_answer_refers_to_it(
    workflow: ChatWorkflow,
    make_user: MakeUser,
    database: Database,
    pg_service: LongTermMemoryService,
) -> None:
    user_id = await make_user()
    session_id = _session()
    chat_session_id = await _chat_session(database, user_id)

    first = await workflow.run_turn(
        query="강남구 아파트 시세 알려줘",
        session_id=session_id,
        user_id=user_id,
        chat_session_id=chat_session_id,
        emitter=ListEmitter(),
    )
    assert first.intent == "market"
    assert first.saved_memory_id is not None
    assert await _memory_rows(database, user_id) == 1

    events, queries = ListEmitter(), _db_queries()
    second = await workflow.run_turn(
        query="대출은 얼마나 받을 수 있나요?",
        session_id=session_id,
        user_id=user_id,
        chat_session_id=chat_session_id,
        emitter=events,
    )
    assert _db_queries() > queries  # the control for the "unchanged" tests below
    [loaded] = events.of_type("memory_loaded")
    assert loaded["memory_count"] >= 1
    assert loaded["source"] == "database"
    assert loaded["user_id"] == user_id
    assert second.memory_count >= 1 and second.memory_source == "database"
    assert "지난번에 문의하신 '강남구 아파트 시세 알려줘'" in second.response
    assert "강남구" in second.response  # the earlier entity, not in this query
    assert await _memory_rows(database, user_id) == 2
    memories = (await pg_service.load_context(user_id)).context.memories
    assert [m.chat_session_id for m in memories] == [chat_session_id, chat_session_id]


async def test_a_turn_saves_summary_entities_and_preferences_in_one_write(
    workflow: ChatWorkflow, make_user: MakeUser, pg_service: LongTermMemoryService
) -> None:
    user_id = await make_user()
    await workflow.run_turn(
        query="서초구 아파트 전세 10억 이하로 시세 알려줘",
        session_id=_session(),
        user_id=user_id,
        chat_session_id=None,
        emitter=ListEmitter(),
    )
    context = (await pg_service.load_context(user_id)).context
    assert context.version == 1  # one record_turn: one version bump
    [memory] = context.memories
    assert memory.summary == "서초구 아파트 전세 10억 이하로 시세 알려줘"
    assert memory.intent == "market"
    assert memory.entities == ("서초구", "아파트", "전세")
    assert memory.message_count == 2
    assert context.preferences["region"] == "서초구"
    assert context.preferences["property_type"] == "아파트"
    assert context.preferences["budget"] == {
        "amount_krw": 1_000_000_000,
        "bound": "max",
        "text": "10억",
    }
    assert {(e.type, e.name) for e in context.entities} == {
        ("district", "서초구"),
        ("property_type", "아파트"),
        ("deal_type", "전세"),
    }


@pytest.mark.parametrize(
    ("query", "limit"),
    [("강남구 아파트 시세 알려줘", 3), ("부동산 어때요", 5), ("시세랑 대출이랑 세금", 5)],
)
async def test_memory_limit_follows_the_intent(
    workflow: ChatWorkflow,
    make_user: MakeUser,
    pg_service: LongTermMemoryService,
    query: str,
    limit: int,
) -> None:
    user_id = await make_user()
    for i in range(6):
        await pg_service.save_conversation_memory(user_id, None, f"earlier {i}", "market")
    result = await workflow.run_turn(
        query=query,
        session_id=_session(),
        user_id=user_id,
        chat_session_id=None,
        emitter=ListEmitter(),
    )
    assert result.memory_count == limit


async def test_anonymous_turn_touches_no_tier_and_saves_nothing(
    workflow: ChatWorkflow, database: Database
) -> None:
    rows, queries = await _memory_rows(database), _db_queries()
    events = ListEmitter()
    result = await workflow.run_turn(
        query="강남구 아파트 시세 알려줘",
        session_id=_session(),
        user_id=None,
        chat_session_id=None,
        emitter=events,
    )
    assert _db_queries() == queries
    assert await _memory_rows(database) == rows
    [loaded] = events.of_type("memory_loaded")
    assert (loaded["memory_count"], loaded["source"], loaded["user_id"]) == (0, "none", None)
    assert (result.memory_count, result.memory_source) == (0, "none")
    assert result.saved_memory_id is None
    assert result.intent == "market" and "시세" in result.response


async def test_irrelevant_query_neither_loads_nor_saves_memory(
    workflow: ChatWorkflow, make_user: MakeUser, database: Database
) -> None:
    user_id = await make_user()
    queries = _db_queries()
    events = ListEmitter()
    result = await workflow.run_turn(
        query="오늘 날씨 어때요?",
        session_id=_session(),
        user_id=user_id,
        chat_session_id=None,
        emitter=events,
    )
    assert _db_queries() == queries
    assert await _memory_rows(database, user_id) == 0
    assert {e["source"] for e in events.of_type("memory_loaded")} == {"none"}
    assert result.intent == "irrelevant" and result.saved_memory_id is None
    assert events.types == ["planning_start", "memory_loaded", "final_response"]
    assert "부동산" in result.response


async def test_memory_failure_never_fails_the_turn(
    unreachable_service: LongTermMemoryService, make_user: MakeUser
) -> None:
    workflow = ChatWorkflow(unreachable_service)
    events = ListEmitter()
    result = await workflow.run_turn(
        query="강남구 아파트 시세 알려줘",
        session_id=_session(),
        user_id=await make_user(),
        chat_session_id=None,
        emitter=events,
    )
    assert result.intent == "market" and "강남구" in result.response
    assert (result.memory_count, result.memory_source, result.saved_memory_id) == (0, "none", None)
    unavailable = events.of_type("memory_unavailable")
    assert [e["stage"] for e in unavailable] == ["load", "save"]
    assert all(e["error"] == "StoreUnavailable" and e["message"] for e in unavailable)
    assert "127.0.0.1" not in str(unavailable)  # no internals reach the client
    [loaded] = events.of_type("memory_loaded")
    assert (loaded["memory_count"], loaded["source"]) == (0, "none")
    assert events.types[-1] == "final_response"


async def test_events_have_type_and_utc_timestamp_and_come_in_order(
    workflow: ChatWorkflow, make_user: MakeUser
) -> None:
    events = ListEmitter()
    await workflow.run_turn(
        query="강남구 아파트 시세 알려줘",
        session_id=_session(),
        user_id=await make_user(),
        chat_session_id=None,
        emitter=events,
    )
    assert events.types == [
        "planning_start",
        "memory_loaded",
        "team_start",
        "team_complete",
        "team_start",
        "team_complete",
        "final_response",
    ]
    assert [e["team"] for e in events.of_type("team_start")] == ["search_team", "analysis_team"]
    assert [e["team"] for e in events.of_type("team_complete")] == [
        "search_team",
        "analysis_team",
    ]
    [final] = events.of_type("final_response")
    assert final["intent"] == "market" and final["response"]
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in events.events]
    assert all(stamp.utcoffset() == UTC.utcoffset(None) for stamp in stamps)
    assert stamps == sorted(stamps)


async def test_short_term_state_comes_in_with_the_turn_and_nothing_stays_behind(
    workflow: ChatWorkflow, pg_service: LongTermMemoryService
) -> None:
    session = _session()
    first = await workflow.run_turn(
        query="강남구 아파트 시세",
        session_id=session,
        user_id=None,
        chat_session_id=None,
        emitter=ListEmitter(),
    )
    assert first.turn == 1
    assert [t["query"] for t in first.recent_turns] == ["강남구 아파트 시세"]

    # The next turn runs on another process: a workflow of its own, given what the
    # caller kept (in Postgres) of the session.
    elsewhere = ChatWorkflow(pg_service)
    events = ListEmitter()
    second = await elsewhere.run_turn(
        query="대출 금리는요?",
        session_id=session,
        user_id=None,
        chat_session_id=None,
        emitter=events,
        turn=2,
        recent_turns=first.recent_turns,
    )
    assert second.turn == 2 and second.intent == "loan"
    assert [t["query"] for t in second.recent_turns] == ["강남구 아파트 시세", "대출 금리는요?"]
    assert events.of_type("final_response")[0]["turn"] == 2

    # The first workflow kept nothing of the session: without the caller's state it is new.
    again = await workflow.run_turn(
        query="전세사기 위험",
        session_id=session,
        user_id=None,
        chat_session_id=None,
        emitter=ListEmitter(),
    )
    assert again.turn == 1 and [t["query"] for t in again.recent_turns] == ["전세사기 위험"]


async def test_recent_turns_stay_bounded(workflow: ChatWorkflow) -> None:
    earlier = [{"query": f"q{i}", "response": f"a{i}"} for i in range(RECENT_TURNS_KEPT + 5)]
    result = await workflow.run_turn(
        query="전세사기 위험",
        session_id=_session(),
        user_id=None,
        chat_session_id=None,
        emitter=ListEmitter(),
        turn=len(earlier) + 1,
        recent_turns=earlier,
    )
    assert len(result.recent_turns) == RECENT_TURNS_KEPT
    assert result.recent_turns[-1]["query"] == "전세사기 위험"


async def test_identity_comes_from_the_turn_never_from_stored_state(
    workflow: ChatWorkflow, make_user: MakeUser, database: Database
) -> None:
    user_id = await make_user()
    session_id = _session()
    await workflow.run_turn(
        query="강남구 아파트 시세",
        session_id=session_id,
        user_id=user_id,
        chat_session_id=None,
        emitter=ListEmitter(),
    )
    queries = _db_queries()
    result = await workflow.run_turn(
        query="강남구 아파트 시세",
        session_id=session_id,
        user_id=None,
        chat_session_id=None,
        emitter=ListEmitter(),
    )
    assert (result.memory_count, result.memory_source) == (0, "none")
    assert _db_queries() == queries
    assert await _memory_rows(database, user_id) == 1


async def test_a_refused_save_is_reported_and_the_turn_still_answers(
    workflow: ChatWorkflow, make_user: MakeUser, database: Database
) -> None:
    user_id = await make_user()
    events = ListEmitter()
    result = await workflow.run_turn(
        query="강남구 아파트 시세 알려줘",
        session_id=_session(),
        user_id=user_id,
        chat_session_id=str(uuid.uuid4()),  # no such chat session: Postgres refuses the row
        emitter=events,
    )
    assert result.saved_memory_id is None and "강남구" in result.response
    [unavailable] = events.of_type("memory_unavailable")
    assert (unavailable["stage"], unavailable["error"]) == ("save", "InvalidMemory")
    assert await _memory_rows(database, user_id) == 0
