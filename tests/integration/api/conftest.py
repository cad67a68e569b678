"""A live API server whose Postgres and Redis connections run through proxies we own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.engine import make_url
from websockets.asyncio.client import connect

from memlayer.settings import Settings
from tests.conftest import base_redis_url
from tests.support.live_server import LiveServer
from tests.support.tcp_proxy import ChaosProxy


@pytest.fixture(scope="session")
async def pg_proxy(database_url: str) -> AsyncIterator[ChaosProxy]:
    url = make_url(database_url)
    proxy = await ChaosProxy(url.port or 5432, url.host or "127.0.0.1").start()
    yield proxy
    await proxy.aclose()


@pytest.fixture(scope="session")
async def redis_proxy() -> AsyncIterator[ChaosProxy]:
    url = make_url(base_redis_url())
    proxy = await ChaosProxy(url.port or 6379, url.host or "127.0.0.1").start()
    yield proxy
    await proxy.aclose()


@pytest.fixture(scope="session")
async def api_settings(
    database_url: str, pg_proxy: ChaosProxy, redis_proxy: ChaosProxy
) -> Settings:
    db = make_url(database_url).set(host="127.0.0.1", port=pg_proxy.port)
    redis_db = make_url(base_redis_url()).database or "0"
    return Settings(
        database_url=db.render_as_string(hide_password=False),
        redis_url=f"redis://127.0.0.1:{redis_proxy.port}/{redis_db}",
        cache_key_prefix=f"memlayer-apitest-{uuid.uuid4().hex[:8]}",
        jwt_secret="api-test-secret-" + uuid.uuid4().hex,
        breaker_cooldown_seconds=0.2,
        database_pool_timeout_seconds=2,
    )


@pytest.fixture(scope="session")
async def server(api_settings: Settings) -> AsyncIterator[LiveServer]:
    live = await LiveServer(api_settings).start()
    yield live
    await live.stop()


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as http:
        yield http


async def register(client: httpx.AsyncClient) -> dict[str, Any]:
    email = f"api-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": "password-123"}
    )
    assert response.status_code == 201, response.text
    return {**response.json(), "email": email}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start_session(client: httpx.AsyncClient, token: str | None = None) -> str:
    headers = bearer(token) if token else {}
    response = await client.post("/api/v1/chat/start", headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["session_id"]


async def chat_turn(server: LiveServer, session_id: str, *queries: str) -> list[list[dict]]:
    """Send queries over one socket; returns each turn's events up to final_response."""
    turns: list[list[dict]] = []
    async with connect(f"{server.ws_url}/api/v1/chat/ws/{session_id}") as ws:
        connected = orjson.loads(await ws.recv())
        assert connected["type"] == "connected"
        for query in queries:
            await ws.send(orjson.dumps({"type": "query", "query": query}).decode())
            events = []
            while True:
                event = orjson.loads(await ws.recv())
                events.append(event)
                if event["type"] in ("final_response", "error"):
                    break
            turns.append(events)
    return turns


def event(events: list[dict], kind: str) -> dict:
    matches = [e for e in events if e["type"] == kind]
    assert matches, f"no {kind} event in {[e['type'] for e in events]}"
    return matches[0]
