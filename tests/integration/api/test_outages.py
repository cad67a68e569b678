"""Redis or Postgres going away mid-chat never fails the turn."""

from __future__ import annotations

import orjson
from websockets.asyncio.client import connect

from tests.support.api_client import bearer, chat_turn, event, register, start_session


async def test_chat_answers_from_postgres_while_redis_is_down(client, server, redis_proxy):
    user = await register(client)
    session = await start_session(client, user["access_token"])
    token = user["access_token"]
    await chat_turn(server, session, "서초구 아파트 시세", token=token)
    redis_proxy.refuse()
    try:
        [events] = await chat_turn(server, session, "서초구 대출 금리는?", token=token)
        loaded = event(events, "memory_loaded")
        assert loaded["source"] == "database" and loaded["memory_count"] >= 1
        assert event(events, "final_response")["response"]
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["components"]["redis"]["status"] == "down"
    finally:
        redis_proxy.forward()
    context = await client.get("/api/v1/memory/context", headers=bearer(user["access_token"]))
    assert len(context.json()["memories"]) == 2, "the write made during the outage is served"


async def test_chat_answers_without_memory_while_postgres_is_down(client, server, pg_proxy):
    user = await register(client)
    session = await start_session(client, user["access_token"])
    async with connect(
        f"{server.ws_url}/api/v1/chat/ws/{session}",
        additional_headers=bearer(user["access_token"]),
    ) as ws:
        assert orjson.loads(await ws.recv())["type"] == "connected"
        pg_proxy.refuse()
        try:
            await ws.send(orjson.dumps({"type": "query", "query": "용산구 아파트 시세"}).decode())
            events = []
            while not events or events[-1]["type"] not in ("final_response", "error"):
                events.append(orjson.loads(await ws.recv()))
            assert event(events, "memory_loaded")["memory_count"] == 0
            assert event(events, "final_response")["response"]
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            components = ready.json()["components"]
            assert components["postgres"]["status"] == "down"
            assert components["redis"]["status"] == "up"
            for _ in range(3):  # pooled connections die first, then new ones are refused
                started = await client.post("/api/v1/chat/start")
                assert started.status_code == 503, started.text
                assert started.json()["detail"] and started.headers["retry-after"]
        finally:
            pg_proxy.forward()
    assert (await client.get("/readyz")).status_code == 200
