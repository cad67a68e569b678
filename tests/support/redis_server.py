"""redis-server processes a test session owns, on the package's one launcher.

The shared Redis at MEMLAYER_TEST_REDIS_URL serves every suite at once, so nothing may
kill, hang or reconfigure it. Tests that need to do that to Redis (outages, a restart from
an older snapshot) or need a topology of their own (a cluster) start their own servers
with ``memlayer.chaos.redis_server`` (the chaos run uses the same one), on free loopback
ports, and stop exactly those processes, by the handle that started them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from memlayer.chaos import redis_server
from memlayer.chaos.redis_server import RedisServer, free_port, wait_for

__all__ = [
    "RedisServer",
    "free_port",
    "require_redis_binaries",
    "running_cluster",
    "running_redis",
    "wait_for",
]


def require_redis_binaries() -> None:
    """Fail (never skip) with what to install when the Redis binaries are missing."""
    try:
        redis_server.require_redis_binaries()
    except redis_server.RedisBinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    """A standalone redis-server for the duration of the block."""
    require_redis_binaries()
    server = RedisServer(workdir)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextmanager
def running_cluster(workdir: Path, nodes: int = 3) -> Iterator[str]:
    """A Redis Cluster of ``nodes`` masters; yields its ``redis+cluster://`` URL."""
    require_redis_binaries()
    with ExitStack() as stack:
        servers = []
        for _ in range(nodes):
            server = RedisServer(workdir, cluster=True)
            stack.callback(server.stop)
            servers.append(server)
        for server in servers:
            server.wait_ready()
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{s.port}" for s in servers),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=30,
            check=True,
        )
        for server in servers:
            wait_for(
                lambda s=server: "cluster_state:ok" in s.cli("cluster", "info"),
                f"cluster state ok on :{server.port}",
            )
        yield f"redis+cluster://127.0.0.1:{servers[0].port}"
