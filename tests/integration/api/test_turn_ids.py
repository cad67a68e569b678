"""Every chat turn has an id; a turn sent again with the same id is stored once."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from memlayer.memory.models import ConversationMemory
from tests.support.api_client import chat_socket, event, register, send_query, start_session


async def _memories(database, user_id: int) -> int:
    async with database.sessionmaker() as session:
        statement = select(func.count()).where(ConversationMemory.user_id == user_id)
        return (await session.execute(statement)).scalar_one()


async def test_a_turn_sent_twice_with_its_id_is_remembered_once(client, server, database):
    user = await register(client)
    session = await start_session(client, user["access_token"])
    turn_id = str(uuid.uuid4())
    async with chat_socket(server, session, user["access_token"]) as ws:
        first = await send_query(ws, "강남구 아파트 시세 알려줘", turn_id)
        again = await send_query(ws, "강남구 아파트 시세 알려줘", turn_id)
    assert event(first, "final_response")["turn_id"] == turn_id
    assert event(again, "final_response")["turn_id"] == turn_id
    assert not [e for e in first + again if e["type"] == "memory_unavailable"]
    assert await _memories(database, user["user_id"]) == 1


async def test_a_turn_without_an_id_gets_one_from_the_server(client, server, database):
    user = await register(client)
    session = await start_session(client, user["access_token"])
    async with chat_socket(server, session, user["access_token"]) as ws:
        first = await send_query(ws, "마포구 전세 매물")
        second = await send_query(ws, "마포구 전세 매물")
    ids = {event(turn, "final_response")["turn_id"] for turn in (first, second)}
    assert len(ids) == 2 and all(str(uuid.UUID(i)) == i for i in ids)
    assert await _memories(database, user["user_id"]) == 2, "no id sent: two distinct turns"


async def test_a_turn_id_that_is_not_a_uuid_is_an_error_event_and_the_socket_stays(client, server):
    session = await start_session(client)
    async with chat_socket(server, session) as ws:
        for bad in ("not-a-uuid", "", 42):
            [reply] = await send_query(ws, "월세 시세", bad)  # type: ignore[arg-type]
            assert reply["type"] == "error" and "turn_id" in reply["message"]
        ok = await send_query(ws, "월세 시세")
    assert event(ok, "final_response")["response"]
