"""``memlayer serve`` as a real process: started on a free port, stopped by its PID.

For the chaos run and for tests where processes matter (several workers, a process killed
outright). The child's configuration is exactly what it is given: ``MEMLAYER_*`` and
``PROMETHEUS_MULTIPROC_DIR`` of the parent's environment are not inherited.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx
from pydantic import SecretStr

from memlayer import multiproc
from memlayer.chaos.redis_server import free_port
from memlayer.settings import Settings

STARTUP_SECONDS = 30.0
STOP_SECONDS = 15.0


class ServerExited(RuntimeError):
    """The server process ended before it answered (its log says why)."""


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``MEMLAYER_*`` variables that reproduce ``settings`` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(exclude_defaults=True).items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"MEMLAYER_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


def child_env(memlayer: Mapping[str, str]) -> dict[str, str]:
    """This environment without memlayer's own variables, plus ``memlayer``'s."""
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MEMLAYER_") and key != multiproc.ENV
    }
    return {**base, **memlayer}


class ServerProcess:
    """One ``memlayer serve`` (with ``workers`` uvicorn workers) on 127.0.0.1."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        workers: int = 1,
        log_path: Path | None = None,
        port: int | None = None,
        ready_path: str = "/healthz",
    ) -> None:
        self.env = child_env(env)
        # What must answer 200 before start() returns: /healthz (the process is up, Redis
        # may be down) or /readyz (Postgres and Redis answer too).
        self.ready_path = ready_path
        self.workers = workers
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self._log: IO[bytes] = (
            open(log_path, "a+b") if log_path is not None else tempfile.TemporaryFile()
        )
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, within: float = STARTUP_SECONDS) -> ServerProcess:
        """Start and wait until ``ready_path`` answers 200."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "memlayer.cli",
            "serve",
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--workers", str(self.workers)),
            env=self.env,
            stdout=self._log,
            stderr=self._log,
        )
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            async with asyncio.timeout(within):
                while True:
                    if self._process.returncode is not None:
                        raise ServerExited(f"memlayer serve exited:\n{self.log_tail()}")
                    try:
                        if (await http.get(self.ready_path)).status_code == 200:
                            return self
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)  # polling a starting process, not a race

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    async def stop(self, grace: float = STOP_SECONDS) -> int | None:
        """SIGTERM (a graceful shutdown), SIGKILL if it does not end in time."""
        return await self._end(signal.SIGTERM, grace)

    async def kill(self) -> int | None:
        """SIGKILL: the process dies without running any of its shutdown code."""
        return await self._end(signal.SIGKILL, STOP_SECONDS)

    async def _end(self, sig: signal.Signals, grace: float) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(sig)
            try:
                async with asyncio.timeout(grace):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        return process.returncode

    def close_log(self) -> None:
        self._log.close()
