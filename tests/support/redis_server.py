"""redis-server processes a test session owns: one launcher for every suite that needs one.

The shared Redis at MEMLAYER_TEST_REDIS_URL serves every suite at once, so nothing may
kill, hang or reconfigure it. Tests that need to do that to Redis (outages) or need a
topology of their own (a cluster) start their own servers here, on free loopback ports,
and stop exactly those processes, by the handle that started them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port (and port+10000 for a cluster bus when asked)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if not with_bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Bounded polling for an external process to become ready (not test synchronisation)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def require_redis_binaries() -> None:
    """Fail (never skip) with what to install when the Redis binaries are missing."""
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: install Redis (apt-get install redis-server)",
            pytrace=False,
        )


class RedisServer:
    """One redis-server on a free loopback port; no persistence."""

    def __init__(self, workdir: Path, *, cluster: bool = False) -> None:
        self.port = free_port(with_bus=cluster)
        args = [
            "redis-server",
            *("--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no"),
            *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
        ]
        if cluster:
            args += [
                *("--cluster-enabled", "yes", "--cluster-node-timeout", "2000"),
                *("--cluster-config-file", str(workdir / f"nodes-{self.port}.conf")),
            ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout

    def wait_ready(self) -> None:
        wait_for(lambda: self.cli("ping").strip() == "PONG", f"redis-server on :{self.port}")

    def stop(self) -> None:
        """Stop this process (by its own handle: never by name)."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)


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
