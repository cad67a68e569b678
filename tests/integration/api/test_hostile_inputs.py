"""Inputs that must not break an account, a socket or the server.

Each case was once a 500, a traceback or a silent loss: a 400-digit amount, values stored
before the service refused them, binary frames, NUL characters, history that could not be
stored.
"""

from __future__ import annotations

import logging

import orjson
from prometheus_client import REGISTRY
from sqlalchemy import text

from tests.support.api_client import (
    bearer,
    chat_socket,
    event,
    register,
    send_query,
    start_session,
)


def _metric(name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_absurd_amounts_neither_fail_the_turn_nor_break_the_account(client, server):
    user = await register(client)
    token = user["access_token"]
    session = await start_session(client, token)
    async with chat_socket(server, session, token) as ws:
        for query in ("1" + "0" * 400 + "만원 이하 강남 아파트", "9" * 400 + "억 강남 아파트"):
            events = await send_query(ws, query)
            assert events[-1]["type"] == "final_response", events
            assert not [e for e in events if e["type"] == "memory_unavailable"], events
        later = await send_query(ws, "강남구 아파트 10억 이하 시세")
    assert event(later, "memory_loaded")["memory_count"] == 2
    context = await client.get("/api/v1/memory/context", headers=bearer(token))
    assert context.status_code == 200, context.text
    assert context.json()["preferences"]["budget"]["amount_krw"] == 1_000_000_000
    assert context.json()["preferences"]["region"] == "강남구"


async def test_values_stored_before_the_service_refused_them_are_left_out(
    client, server, database, caplog
):
    user = await register(client)
    token = user["access_token"]
    huge = "1" + "0" * 400
    async with database.transaction() as db:
        for key, value in (
            ("budget", f'{{"amount_krw": {huge}, "bound": "max"}}'),
            ("too_big", "1e400"),
            ("overflowing", "18446744073709551616"),
            ("region", '"서초구"'),
        ):
            await db.execute(
                text(
                    "INSERT INTO user_preferences (user_id, key, value, updated_at) "
                    "VALUES (:uid, :key, CAST(:value AS jsonb), now())"
                ),
                {"uid": user["user_id"], "key": key, "value": value},
            )
    dropped = _metric("memlayer_stored_values_dropped_total", field="preference")

    with caplog.at_level(logging.WARNING, logger="memlayer"):
        context = await client.get("/api/v1/memory/context", headers=bearer(token))
    assert context.status_code == 200, context.text
    assert context.json()["preferences"] == {"region": "서초구"}
    assert _metric("memlayer_stored_values_dropped_total", field="preference") == dropped + 3
    assert "budget" in caplog.text and huge[:20] not in caplog.text, "key logged, value not"

    session = await start_session(client, token)
    async with chat_socket(server, session, token) as ws:
        events = await send_query(ws, "서초구 아파트 시세")
    assert events[-1]["type"] == "final_response"
    assert not [e for e in events if e["type"] in ("memory_unavailable", "error")], events


async def test_binary_frames_get_an_error_event_and_the_socket_carries_on(client, server):
    session = await start_session(client)
    async with chat_socket(server, session) as ws:
        await ws.send(b"\x00\x01binary")
        reply = orjson.loads(await ws.recv())
        assert reply["type"] == "error" and "binary" in reply["message"]
        events = await send_query(ws, "월세 시세")
    assert events[-1]["type"] == "final_response"


async def test_nul_in_start_metadata_is_a_clear_422(client):
    for metadata in ({"client": "web\u0000"}, {"a\u0000": 1}, {"nested": [{"x": "\u0000"}]}):
        response = await client.post("/api/v1/chat/start", json={"metadata": metadata})
        assert response.status_code == 422, response.text
        assert "NUL" in response.json()["detail"]
    surrogate = await client.post(
        "/api/v1/chat/start",
        content=b'{"metadata": {"x": "\\ud800"}}',
        headers={"content-type": "application/json"},
    )
    assert surrogate.status_code == 422 and "surrogate" in surrogate.json()["detail"]


async def test_nul_in_a_query_is_refused_never_silently_lost(client, server):
    user = await register(client)
    token = user["access_token"]
    session = await start_session(client, token)
    async with chat_socket(server, session, token) as ws:
        await ws.send(orjson.dumps({"type": "query", "query": "강남구\u0000 시세"}).decode())
        refused = orjson.loads(await ws.recv())
        assert refused["type"] == "error" and "NUL" in refused["message"]
        events = await send_query(ws, "강남구 아파트 시세")
    assert event(events, "final_response")["turn"] == 1, "the refused frame was not a turn"
    history = (await client.get("/api/v1/chat/conversations", headers=bearer(token))).json()
    assert history["conversations"][0]["message_count"] == 2


async def test_a_turn_whose_history_was_not_stored_says_so(client, server, database):
    """Postgres refuses the history rows (a trigger stands in for any refusal)."""
    marker = "history-refused-marker"
    async with database.transaction() as db:
        await db.execute(
            text(
                "CREATE FUNCTION refuse_marked() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.content LIKE '%{marker}%' THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        await db.execute(
            text(
                "CREATE TRIGGER refuse_marked BEFORE INSERT ON chat_messages "
                "FOR EACH ROW EXECUTE FUNCTION refuse_marked()"
            )
        )
    try:
        user = await register(client)
        token = user["access_token"]
        session = await start_session(client, token)
        async with chat_socket(server, session, token) as ws:
            events = await send_query(ws, f"강남구 아파트 시세 {marker}")
    finally:
        async with database.transaction() as db:
            await db.execute(text("DROP TRIGGER refuse_marked ON chat_messages"))
            await db.execute(text("DROP FUNCTION refuse_marked()"))
    kinds = [e["type"] for e in events]
    assert kinds[-2:] == ["history_unavailable", "final_response"], kinds
    assert event(events, "history_unavailable")["message"]
    context = await client.get("/api/v1/memory/context", headers=bearer(token))
    assert len(context.json()["memories"]) == 1, "the memory of the turn was still saved"
