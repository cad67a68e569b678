"""Talking to a live memlayer as a client would: accounts, sessions and chat turns.

Tests import these directly (never from a conftest). The chat socket authenticates like
real clients do: the ``Authorization`` header (``auth="header"``, what Locust uses) or a
first ``auth`` frame (``auth="frame"``, what the browser page does).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.support.live_server import LiveServer

PASSWORD = "password-123"
AuthMode = Literal["header", "frame", "none"]


async def register(client: httpx.AsyncClient) -> dict[str, Any]:
    """A new account: ``user_id``, ``access_token`` and ``email``."""
    email = f"api-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return {**response.json(), "email": email}


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start_session(client: httpx.AsyncClient, token: str | None = None) -> str:
    """A new chat session: signed-in with ``token``, anonymous without."""
    headers = bearer(token) if token else {}
    response = await client.post("/api/v1/chat/start", headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["session_id"]


async def end_session(client: httpx.AsyncClient, session_id: str, token: str) -> httpx.Response:
    return await client.post(f"/api/v1/chat/sessions/{session_id}/end", headers=bearer(token))


def ws_url(server: LiveServer | str, session_id: str) -> str:
    base = server if isinstance(server, str) else server.ws_url
    return f"{base}/api/v1/chat/ws/{session_id}"


@asynccontextmanager
async def chat_socket(
    server: LiveServer | str,
    session_id: str,
    token: str | None = None,
    *,
    auth: AuthMode = "header",
) -> AsyncIterator[ClientConnection]:
    """An open chat socket past its ``connected`` event (authenticated if ``token``)."""
    headers = bearer(token) if token and auth == "header" else None
    async with connect(ws_url(server, session_id), additional_headers=headers) as ws:
        if token and auth == "frame":
            await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        connected = orjson.loads(await ws.recv())
        assert connected["type"] == "connected", connected
        yield ws


async def send_query(ws: ClientConnection, query: str) -> list[dict[str, Any]]:
    """One turn on an open socket: its events up to ``final_response`` (or ``error``)."""
    await ws.send(orjson.dumps({"type": "query", "query": query}).decode())
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] not in ("final_response", "error"):
        events.append(orjson.loads(await ws.recv()))
    return events


async def chat_turn(
    server: LiveServer | str,
    session_id: str,
    *queries: str,
    token: str | None = None,
    auth: AuthMode = "header",
) -> list[list[dict[str, Any]]]:
    """Send queries over one socket; returns each turn's events up to final_response."""
    async with chat_socket(server, session_id, token, auth=auth) as ws:
        return [await send_query(ws, query) for query in queries]


def event(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [e for e in events if e["type"] == kind]
    assert matches, f"no {kind} event in {[e['type'] for e in events]}"
    return matches[0]
