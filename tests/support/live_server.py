"""A real uvicorn server on a free loopback port, in the test's own event loop."""

from __future__ import annotations

import asyncio

import uvicorn

from memlayer.api.app import create_app
from memlayer.api.serving import UVICORN_OPTIONS
from memlayer.settings import Settings


class LiveServer:
    def __init__(self, settings: Settings, *, log_level: str = "warning") -> None:
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level=log_level,
            lifespan="on",
            ws="websockets-sansio",
            **UVICORN_OPTIONS,  # as `memlayer serve` runs it (keep-alive, frame size)
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""

    async def start(self) -> LiveServer:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # bounded by the test timeout; no sleep-based sync
            if self._task.done():
                self._task.result()
                raise RuntimeError("uvicorn stopped during start-up")
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://")

    @property
    def services(self):
        return self.app.state.services

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
