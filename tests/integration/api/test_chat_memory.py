"""The chat flow over a real server: memory across sessions, anonymous use, irrelevant queries."""

from __future__ import annotations

import orjson
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from memlayer.memory.models import ConversationMemory
from tests.support.api_client import bearer, chat_turn, event, register, start_session


def _metric(name: str) -> float:
    return sum(s.value for family in REGISTRY.collect() for s in family.samples if s.name == name)


async def test_second_session_loads_the_first_turn_from_cache(client, server):
    user = await register(client)
    token = user["access_token"]
    first = await start_session(client, token)
    [turn1] = await chat_turn(server, first, "강남구 아파트 시세 알려줘", token=token)
    assert event(turn1, "final_response")["intent"] == "market"

    second = await start_session(client, token)
    [turn2] = await chat_turn(server, second, "그 지역 대출 한도는 어떻게 되나요?", token=token)
    loaded = event(turn2, "memory_loaded")
    assert loaded["user_id"] == user["user_id"]
    assert loaded["memory_count"] >= 1
    assert loaded["source"] == "cache"
    assert "강남구" in event(turn2, "final_response")["response"], (
        "answer refers to the first topic"
    )

    history = await client.get("/api/v1/chat/conversations", headers=bearer(token))
    assert history.status_code == 200
    conversations = history.json()["conversations"]
    assert len(conversations) == 2
    assert conversations[-1]["title"].startswith("강남구")
    assert conversations[-1]["message_count"] == 2


async def test_progress_events_arrive_in_order_with_timestamps(client, server):
    user = await register(client)
    session = await start_session(client, user["access_token"])
    [events] = await chat_turn(
        server, session, "전세 계약 주의사항 알려줘", token=user["access_token"]
    )
    kinds = [e["type"] for e in events]
    assert kinds[0] == "planning_start" and kinds[-1] == "final_response"
    assert kinds.index("memory_loaded") < kinds.index("final_response")
    assert all("timestamp" in e for e in events)


async def test_anonymous_session_chats_without_memory(client, server, database):
    async with database.sessionmaker() as db:
        rows_before = await db.scalar(select(func.count()).select_from(ConversationMemory))
    response = await client.post("/api/v1/chat/start")
    assert response.status_code == 201 and response.json()["user_id"] is None
    session = response.json()["session_id"]
    [events] = await chat_turn(server, session, "강남구 아파트 시세 알려줘")
    loaded = event(events, "memory_loaded")
    assert loaded["memory_count"] == 0 and loaded["source"] == "none"
    assert event(events, "final_response")["response"]
    async with database.sessionmaker() as db:
        rows_after = await db.scalar(select(func.count()).select_from(ConversationMemory))
    assert rows_after == rows_before


async def test_irrelevant_query_loads_no_memory(client, server):
    user = await register(client)
    session = await start_session(client, user["access_token"])
    before = (_metric("memlayer_cache_requests_total"), _metric("memlayer_db_queries_total"))
    [events] = await chat_turn(
        server, session, "오늘 점심 메뉴 추천해줘", token=user["access_token"]
    )
    after = (_metric("memlayer_cache_requests_total"), _metric("memlayer_db_queries_total"))
    assert event(events, "final_response")["intent"] == "irrelevant"
    assert after == before, "no cache lookup and no memory query for an irrelevant turn"
    context = await client.get("/api/v1/memory/context", headers=bearer(user["access_token"]))
    assert context.json()["memories"] == []


async def test_unknown_session_closes_with_4004(server):
    async with connect(f"{server.ws_url}/api/v1/chat/ws/session-nope") as ws:
        try:
            await ws.recv()
            raise AssertionError("the socket should have been closed")
        except ConnectionClosed as closed:
            assert closed.rcvd.code == 4004
            assert "session" in closed.rcvd.reason


async def test_malformed_frames_get_error_events_and_the_socket_stays_usable(client, server):
    session = await start_session(client)
    async with connect(f"{server.ws_url}/api/v1/chat/ws/{session}") as ws:
        assert orjson.loads(await ws.recv())["type"] == "connected"
        for bad in ("not json", '{"type": "hello"}', '{"type": "query", "query": ""}', "[]"):
            await ws.send(bad)
            reply = orjson.loads(await ws.recv())
            assert reply["type"] == "error" and reply["message"]
        await ws.send(orjson.dumps({"type": "query", "query": "월세 시세"}).decode())
        while (reply := orjson.loads(await ws.recv()))["type"] != "final_response":
            pass
        assert reply["response"]
