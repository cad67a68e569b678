"""``memlayer serve`` as a real second process, configured from a Settings object.

For tests where processes matter: a session's next turn or its end landing on another API
process; a writer killed with SIGKILL right after an acknowledged write. Started, stopped
(SIGTERM) and killed (SIGKILL) by PID, never by name.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from memlayer.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(
        self, settings: Settings, *, ready_path: str = "/healthz", **overrides: Any
    ) -> None:
        """``ready_path``: what must answer 200 before :meth:`start` returns (``/readyz``
        waits for Postgres and Redis too)."""
        self.settings = settings.model_copy(update=overrides)
        self._ready_path = ready_path
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self._process: asyncio.subprocess.Process | None = None
        self._log = tempfile.TemporaryFile()  # the server's stderr; a pipe could fill up

    async def start(self) -> ServerProcess:
        env = {**os.environ, **settings_env(self.settings), "MEMLAYER_LOG_LEVEL": "WARNING"}
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "memlayer.cli",
            "serve",
            "--port",
            str(self.port),
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self._log,
        )
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            async with asyncio.timeout(STARTUP_SECONDS):
                while True:
                    if self._process.returncode is not None:
                        raise RuntimeError(f"memlayer serve exited:\n{self.log_tail()}")
                    try:
                        if (await http.get(self._ready_path)).status_code == 200:
                            return self
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)  # polling a starting process, not a race

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("not started")
        return self._process.pid

    async def kill(self) -> None:
        """SIGKILL, by PID: the process gets no chance to finish anything (kill -9)."""
        if self._process is None or self._process.returncode is not None:
            return
        self._process.kill()
        await self._process.wait()

    def log_tail(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-3000:]

    async def stop(self) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        self._process.terminate()
        try:
            async with asyncio.timeout(15):
                await self._process.wait()
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        finally:
            self._log.close()
