"""Fixtures of the outage tests: a private redis-server per module and a proxy per test.

Killing or hanging Redis is only ever done to processes these fixtures started, never
to the shared server at MEMLAYER_TEST_REDIS_URL.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.contract.cache_contract_support import free_port, wait_for
from tests.support.tcp_proxy import ChaosProxy


@pytest.fixture(scope="module")
def own_redis_port() -> Iterator[int]:
    if shutil.which("redis-server") is None:
        pytest.fail(
            "redis-server not found: install Redis (apt-get install redis-server)",
            pytrace=False,
        )
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: (
                subprocess.run(
                    ["redis-cli", "-p", str(port), "ping"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout.strip()
                == "PONG"
            ),
            f"redis-server on :{port}",
        )
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
async def proxy(own_redis_port: int) -> AsyncIterator[ChaosProxy]:
    chaos = ChaosProxy(own_redis_port)
    await chaos.start()
    try:
        yield chaos
    finally:
        await chaos.aclose()
