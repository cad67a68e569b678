"""Fixtures of the outage tests: a private redis-server per module and a proxy per test.

Killing or hanging Redis is only ever done to processes these fixtures started, never
to the shared server at MEMLAYER_TEST_REDIS_URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.redis_server import running_redis
from tests.support.tcp_proxy import ChaosProxy


@pytest.fixture(scope="module")
def own_redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.port


@pytest.fixture
async def proxy(own_redis_port: int) -> AsyncIterator[ChaosProxy]:
    chaos = ChaosProxy(own_redis_port)
    await chaos.start()
    try:
        yield chaos
    finally:
        await chaos.aclose()
