"""redis-server processes we own: started on a free port, stopped by their own PID.

A shared Redis serves everyone at once, so nothing may kill, hang or reconfigure it. The
chaos run and the tests that need to do that to Redis (outages, a restart from an older
snapshot) or need a topology of their own (a cluster) start their own servers here, on
free loopback ports, and stop exactly those processes, by the handle that started them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class RedisBinariesMissing(RuntimeError):
    """redis-server or redis-cli is not installed."""


def require_redis_binaries() -> None:
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        raise RedisBinariesMissing(
            f"{' and '.join(missing)} not found: install Redis (apt-get install redis-server)"
        )


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


class RedisServer:
    """One redis-server on a free loopback port, started at once; no automatic snapshots.

    Its RDB file is ``dump-<port>.rdb`` in ``workdir``: ``snapshot()`` saves and copies it
    aside, ``restart(from_snapshot=...)`` stops the server by PID, puts an older snapshot
    back and starts it again on the same port (as a restore or a restart after a crash
    that lost the newest writes would).
    """

    def __init__(self, workdir: Path, *, cluster: bool = False, port: int | None = None) -> None:
        self.workdir = workdir
        # ``port``: start on this one (a new server taking over a stopped one's address).
        self.port = port if port is not None else free_port(with_bus=cluster)
        self._cluster = cluster
        self._process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        args = [
            "redis-server",
            *("--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
            *("--dbfilename", self.rdb.name),
        ]
        if self._cluster:
            args += [
                *("--cluster-enabled", "yes", "--cluster-node-timeout", "2000"),
                *("--cluster-config-file", str(self.workdir / f"nodes-{self.port}.conf")),
            ]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def rdb(self) -> Path:
        return self.workdir / f"dump-{self.port}.rdb"

    @property
    def dump_path(self) -> Path:
        """The RDB file (``rdb``), under the name the coherence tests use."""
        return self.rdb

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

    def snapshot(self, to: Path) -> Path:
        """SAVE now and keep a copy of the RDB file at ``to``."""
        if self.cli("save").strip() != "OK":
            raise RuntimeError(f"redis-server on :{self.port} refused SAVE")
        shutil.copyfile(self.rdb, to)
        return to

    def restart(self, *, from_snapshot: Path | None = None) -> None:
        """Stop by PID, optionally put ``from_snapshot`` back as the RDB file, start again."""
        self.stop()
        if from_snapshot is not None:
            shutil.copyfile(from_snapshot, self.rdb)
        self._process = self._spawn()
        self.wait_ready()

    def stop(self) -> None:
        """Stop this process (by its own handle: never by name)."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
