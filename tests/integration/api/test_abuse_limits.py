"""Abuse limits hold across processes (Redis), bodies are capped, login says 401 and only 401.

The limits are tested on two app instances of their own, sharing Redis and Postgres, with
low limits; the shared test server keeps them out of the way of the other suites.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY

from memlayer.settings import Settings
from tests.support.api_client import PASSWORD, bearer, login, register, start_session
from tests.support.live_server import LiveServer


def _metric(name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture
async def limited_pair(api_settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Two app instances on one Redis and one Postgres, with low limits of their own."""
    settings = api_settings.model_copy(
        update={
            "cache_key_prefix": f"memlayer-limits-{uuid.uuid4().hex[:8]}",
            "rate_limit_login_failures": "3/15 minutes",
            "rate_limit_register": "2/minute",
            "rate_limit_anonymous_start": "2/minute",
        }
    )
    servers = [await LiveServer(settings).start() for _ in range(2)]
    clients = [httpx.AsyncClient(base_url=s.base_url, timeout=20) for s in servers]
    yield tuple(clients)
    for http in clients:
        await http.aclose()
    for live in servers:
        await live.stop()


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert "retry" in response.json()["detail"]


async def test_registrations_per_address_are_limited_across_processes(limited_pair):
    a, b = limited_pair
    await register(a)
    await register(b)
    _assert_limited(
        await a.post(
            "/api/v1/auth/register",
            json={"email": f"x-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
        )
    )


async def test_anonymous_starts_per_address_are_limited_but_signed_in_ones_are_not(
    limited_pair,
):
    a, b = limited_pair
    assert (await a.post("/api/v1/chat/start")).status_code == 201
    assert (await b.post("/api/v1/chat/start")).status_code == 201
    _assert_limited(await b.post("/api/v1/chat/start"))
    user = await register(a)
    for _ in range(3):
        await start_session(b, user["access_token"])


async def test_failed_logins_per_account_are_limited_across_processes(limited_pair):
    a, b = limited_pair
    user = await register(a)
    other = await register(b)
    for http in (a, b, a):
        assert (await login(http, user["email"], "wrong-password")).status_code == 401
    _assert_limited(await login(b, user["email"], PASSWORD))  # even the right password
    assert (await login(b, other["email"], PASSWORD)).status_code == 200, "per account"


async def test_login_keeps_working_while_redis_is_down(client, redis_proxy):
    user = await register(client)
    errors = _metric("memlayer_rate_limit_checks_total", outcome="error")
    redis_proxy.refuse()
    try:
        assert (await login(client, user["email"], "wrong-password")).status_code == 401
        assert (await login(client, user["email"], PASSWORD)).status_code == 200
    finally:
        redis_proxy.forward()
    assert _metric("memlayer_rate_limit_checks_total", outcome="error") > errors


async def test_login_with_any_wrong_password_is_401_whatever_its_length(client):
    user = await register(client)
    for password in ("", "x", "short", "a" * 300):
        response = await login(client, user["email"], password)
        assert response.status_code == 401, (password, response.text)
        assert response.json()["detail"] == "email or password is wrong"
    assert (await login(client, "not-an-email", "x")).status_code == 401


async def test_a_taken_email_is_409_without_echoing_it(client):
    user = await register(client)
    again = await client.post(
        "/api/v1/auth/register", json={"email": user["email"], "password": PASSWORD}
    )
    assert again.status_code == 409
    assert user["email"] not in again.text and user["email"].split("@")[0] not in again.text


async def test_bodies_over_the_cap_are_413_with_a_json_detail(client):
    big = {"metadata": {"blob": "x" * (70 * 1024)}}
    response = await client.post("/api/v1/chat/start", json=big)
    assert response.status_code == 413
    assert "MEMLAYER_MAX_REQUEST_BODY_BYTES" in response.json()["detail"]

    async def chunks():  # no Content-Length: the cap counts what streams in
        for _ in range(80):
            yield b"x" * 1024

    streamed = await client.post(
        "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413

    async def small_chunks():
        yield b'{"email": "nobody@example.com", '
        yield b'"password": "whatever"}'

    fine = await client.post(
        "/api/v1/auth/login", content=small_chunks(), headers={"content-type": "application/json"}
    )
    assert fine.status_code == 401, "a streamed body under the cap reaches the app whole"
    user = await register(client)
    context = await client.get("/api/v1/memory/context", headers=bearer(user["access_token"]))
    assert context.status_code == 200
