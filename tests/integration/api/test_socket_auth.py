"""The chat socket authenticates: a session id is a handle, never a credential.

A signed-in session's socket answers nothing and runs no turn until it is authenticated as
the session's owner; every frame re-checks the session row in Postgres, so an expiry, an
end or a deactivation written by any process takes effect on the next frame.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from sqlalchemy import update
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from memlayer.memory.models import Session, User
from memlayer.settings import Settings
from tests.support.api_client import (
    bearer,
    chat_socket,
    end_session,
    event,
    register,
    send_query,
    start_session,
    ws_url,
)
from tests.support.live_server import LiveServer
from tests.support.server_process import ServerProcess

QUERY = orjson.dumps({"type": "query", "query": "강남구 아파트 시세"}).decode()


async def closed_with(ws: ClientConnection) -> tuple[int, str, list[dict]]:
    """Read until the server closes; (code, reason, events received before the close)."""
    events = []
    try:
        while True:
            events.append(orjson.loads(await ws.recv()))
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server must close with a code and a reason"
        return closed.rcvd.code, closed.rcvd.reason, events


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> dict:
    return await register(client)


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> dict:
    return await register(client)


async def test_signed_in_session_without_a_token_answers_nothing_and_closes_4401(
    client, server, alice
):
    session = await start_session(client, alice["access_token"])
    async with connect(ws_url(server, session)) as ws:
        await ws.send(QUERY)  # a query instead of the auth frame
        code, reason, events = await closed_with(ws)
    assert (code, events) == (4401, []), "no event at all, let alone user data"
    assert "auth" in reason


@pytest.mark.parametrize("auth", ["header", "frame"])
async def test_another_users_token_closes_4403(client, server, alice, bob, auth):
    session = await start_session(client, alice["access_token"])
    headers = bearer(bob["access_token"]) if auth == "header" else None
    async with connect(ws_url(server, session), additional_headers=headers) as ws:
        if auth == "frame":
            await ws.send(orjson.dumps({"type": "auth", "token": bob["access_token"]}).decode())
        await ws.send(QUERY)
        code, reason, events = await closed_with(ws)
    assert (code, events) == (4403, [])
    assert "another user" in reason


@pytest.mark.parametrize("auth", ["header", "frame"])
async def test_an_invalid_token_closes_4401(client, server, alice, auth):
    session = await start_session(client, alice["access_token"])
    forged = alice["access_token"][:-4] + "AAAA"
    headers = bearer(forged) if auth == "header" else None
    async with connect(ws_url(server, session), additional_headers=headers) as ws:
        if auth == "frame":
            await ws.send(orjson.dumps({"type": "auth", "token": forged}).decode())
        code, reason, events = await closed_with(ws)
    assert (code, events) == (4401, [])
    assert forged not in reason and "token" in reason


@pytest.mark.parametrize("auth", ["header", "frame"])
async def test_the_owner_chats_after_either_handshake(client, server, alice, auth):
    session = await start_session(client, alice["access_token"])
    async with chat_socket(server, session, alice["access_token"], auth=auth) as ws:
        events = await send_query(ws, "강남구 아파트 시세 알려줘")
    assert event(events, "memory_loaded")["user_id"] == alice["user_id"]
    assert event(events, "final_response")["turn"] == 1


async def test_anonymous_session_stays_anonymous_whatever_token_it_is_shown(client, server, alice):
    session = await start_session(client)
    async with connect(
        ws_url(server, session), additional_headers=bearer(alice["access_token"])
    ) as ws:
        connected = orjson.loads(await ws.recv())
        assert connected == {**connected, "type": "connected", "user_id": None}
        # An auth frame is ignored too: no reply, and the next turn is still anonymous.
        await ws.send(orjson.dumps({"type": "auth", "token": alice["access_token"]}).decode())
        events = await send_query(ws, "강남구 아파트 시세 알려줘")
    assert events[0]["type"] == "planning_start"
    loaded = event(events, "memory_loaded")
    assert (loaded["user_id"], loaded["source"], loaded["memory_count"]) == (None, "none", 0)
    context = await client.get("/api/v1/memory/context", headers=bearer(alice["access_token"]))
    assert context.json()["memories"] == [], "nothing was written into alice's memory"


async def test_expiry_written_in_postgres_closes_the_open_socket_on_its_next_frame(
    client, server, alice, database
):
    session = await start_session(client, alice["access_token"])
    async with chat_socket(server, session, alice["access_token"]) as ws:
        await send_query(ws, "강남구 아파트 시세")
        async with database.transaction() as db:
            await db.execute(
                update(Session)
                .where(Session.session_id == session)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        await ws.send(QUERY)
        code, reason, events = await closed_with(ws)
    assert (code, events) == (4004, [])
    assert "expired" in reason


async def test_ending_a_session_closes_its_socket_on_the_next_frame(client, server, alice):
    session = await start_session(client, alice["access_token"])
    async with chat_socket(server, session, alice["access_token"]) as ws:
        await send_query(ws, "강남구 아파트 시세")
        ended = await end_session(client, session, alice["access_token"])
        assert ended.status_code == 200 and ended.json()["session_id"] == session
        await ws.send(QUERY)
        code, reason, events = await closed_with(ws)
    assert (code, events) == (4004, [])
    assert "ended" in reason
    # Ended for good: a new socket is refused at once, and ending again changes nothing.
    async with connect(ws_url(server, session)) as ws:
        assert (await closed_with(ws))[0] == 4004
    again = await end_session(client, session, alice["access_token"])
    assert again.json()["ended_at"] == ended.json()["ended_at"]


async def test_an_end_from_another_process_takes_effect_on_the_next_frame(
    client, server, alice, api_settings: Settings
):
    other = await ServerProcess(api_settings).start()
    try:
        session = await start_session(client, alice["access_token"])
        async with chat_socket(server, session, alice["access_token"]) as ws:
            await send_query(ws, "강남구 아파트 시세")
            async with httpx.AsyncClient(base_url=other.base_url) as elsewhere:
                ended = await end_session(elsewhere, session, alice["access_token"])
            assert ended.status_code == 200, ended.text
            await ws.send(QUERY)
            code, _, events = await closed_with(ws)
        assert (code, events) == (4004, [])
    finally:
        await other.stop()


async def test_only_the_owner_ends_a_session(client, alice, bob):
    session = await start_session(client, alice["access_token"])
    anonymous = await start_session(client)
    assert (await end_session(client, session, bob["access_token"])).status_code == 404
    assert (await end_session(client, anonymous, bob["access_token"])).status_code == 404
    assert (await end_session(client, "session-nope", bob["access_token"])).status_code == 404
    no_token = await client.post(f"/api/v1/chat/sessions/{session}/end")
    assert no_token.status_code == 401 and no_token.json()["detail"]
    assert (await end_session(client, session, alice["access_token"])).status_code == 200


async def test_a_deactivated_owner_is_refused(client, server, alice, database):
    session = await start_session(client, alice["access_token"])

    async def deactivate(active: bool) -> None:
        async with database.transaction() as db:
            await db.execute(
                update(User).where(User.id == alice["user_id"]).values(is_active=active)
            )

    async with chat_socket(server, session, alice["access_token"]) as ws:
        await send_query(ws, "강남구 아파트 시세")
        await deactivate(False)
        await ws.send(QUERY)
        code, reason, events = await closed_with(ws)
    assert (code, events) == (4403, [])
    assert "deactivated" in reason
    async with connect(
        ws_url(server, session), additional_headers=bearer(alice["access_token"])
    ) as ws:
        assert (await closed_with(ws))[0] == 4403


@pytest.fixture
async def hurried_server(api_settings: Settings) -> AsyncIterator[LiveServer]:
    live = await LiveServer(
        api_settings.model_copy(update={"ws_auth_timeout_seconds": 0.3})
    ).start()
    yield live
    await live.stop()


async def test_no_auth_frame_in_time_closes_4401(hurried_server, alice):
    async with httpx.AsyncClient(base_url=hurried_server.base_url) as http:
        session = await start_session(http, alice["access_token"])
    async with connect(ws_url(hurried_server, session)) as ws:
        code, reason, events = await closed_with(ws)  # we send nothing at all
    assert (code, events) == (4401, [])
    assert "no auth frame within 0.3 s" in reason
