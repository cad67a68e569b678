"""A cap on request bodies, as a plain ASGI middleware.

Pure ASGI on purpose: the warm ``GET /memory/context`` is a measured hot path, and a
bodiless request costs one scan of its few headers here, nothing more (Starlette's
``BaseHTTPMiddleware`` would add a task and a stream per request). A body with a
``Content-Length`` is judged by it; a chunked body is read up to the cap, then replayed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DRAIN_FACTOR = 16  # an oversized chunked body is read to 16x the cap at most


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._refusal = orjson.dumps(
            {
                "detail": f"request body is larger than {max_bytes} bytes "
                "(MEMLAYER_MAX_REQUEST_BODY_BYTES)"
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    await self._refuse(send)
                    return
                await self.app(scope, receive, send)
                return
            if name == b"transfer-encoding":
                chunked = True
        if not chunked:  # no body at all (a GET): nothing to count
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._drain(receive, message, size)
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, message: Message, size: int) -> None:
        """Read (and drop) the rest of a body a client is still sending, up to a bound, so
        it reads our 413 instead of a reset connection; past the bound we just close."""
        bound = DRAIN_FACTOR * self.max_bytes
        while message.get("more_body", False) and size <= bound:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))

    async def _refuse(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._refusal)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._refusal})
