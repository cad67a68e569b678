"""Fixtures of a live API server whose Postgres and Redis connections run through proxies
we own. Suites that need one import the fixtures from here (never from a conftest)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.engine import make_url

from memlayer.settings import Settings
from tests.support.live_server import LiveServer
from tests.support.services import base_redis_url
from tests.support.tcp_proxy import ChaosProxy

# The shared server's abuse limits are out of the way: the Locust smoke and schemathesis
# register and start sessions from one address by the hundred. The limits themselves are
# tested on servers of their own (test_abuse_limits.py).
GENEROUS_LIMIT = "100000/minute"


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
        rate_limit_register=GENEROUS_LIMIT,
        rate_limit_anonymous_start=GENEROUS_LIMIT,
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
