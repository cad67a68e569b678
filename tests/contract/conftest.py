"""Backends for the cache contract suite: fakeredis, a real Redis, a 3-node Redis Cluster.

Every test gets its own key prefix and deletes its keys by SCAN afterwards: the real
Redis at MEMLAYER_TEST_REDIS_URL is shared with other suites, so no FLUSHDB, ever.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fakeredis
import pytest

from memlayer.cache.errors import REDIS_ERRORS
from tests.contract.cache_contract_support import REDIS_URL, Backend, free_port, wait_for


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three redis-server processes in cluster mode, owned by this test session."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail(
            "redis-server/redis-cli not found: install Redis (apt-get install redis-server)",
            pytrace=False,
        )
    workdir: Path = tmp_path_factory.mktemp("redis-cluster")
    ports = [free_port(with_bus=True) for _ in range(3)]
    procs = [
        subprocess.Popen(
            [
                "redis-server",
                *("--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no"),
                *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
                *("--cluster-enabled", "yes", "--cluster-node-timeout", "2000"),
                *("--cluster-config-file", str(workdir / f"nodes-{port}.conf")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            wait_for(lambda p=port: _cli(p, "ping").strip() == "PONG", f"redis :{port}")
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=30,
            check=True,
        )
        for port in ports:
            wait_for(
                lambda p=port: "cluster_state:ok" in _cli(p, "cluster", "info"),
                f"cluster state ok on :{port}",
            )
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(params=["fakeredis", "redis", "cluster"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "fakeredis":
        b = Backend("fakeredis", None, server=fakeredis.FakeServer())
    elif request.param == "redis":
        b = Backend("redis", REDIS_URL)
        probe = b.client()
        try:
            await probe.ping()
        except REDIS_ERRORS as exc:
            await b.aclose()
            pytest.fail(
                f"no Redis at {REDIS_URL}: {exc}. Run `make test` (it starts the local "
                "server) or set MEMLAYER_TEST_REDIS_URL.",
                pytrace=False,
            )
    else:
        b = Backend("cluster", request.getfixturevalue("redis_cluster_url"))
    try:
        yield b
    finally:
        await b.aclose()
