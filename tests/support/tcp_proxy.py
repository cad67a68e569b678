"""A TCP proxy the outage tests own, put between memlayer and a Postgres or Redis server.

Cutting our own proxy fails only the client under test; stopping a shared server would
break every other test.

Modes: ``forward`` (normal), ``refuse`` (drop every connection at once: Redis is dead),
``stall`` (connections stay open but nothing moves either way: a hung server; what was
held back is delivered after ``forward()``, which is exactly the late reply a reused
connection would misread). ``cut_at(pattern)`` is one-shot: the next client message
containing ``pattern`` (e.g. a COMMIT) is forwarded and the server's reply swallowed, the
connection then cut (the server did it; the client never hears) — or, with
``deliver=False``, the message itself is dropped and the connection cut. With
``after=marker`` only a connection that sent ``marker`` first is cut (e.g. the COMMIT of a
memory write, not of a session check; the client must send statements as text, i.e.
without prepared statements).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass
class _Link:
    swallow_reply: bool = False
    armed: bool = False  # sent the ``after`` marker of a pending cut


class ChaosProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cut_pattern: bytes | None = None
        self._cut_after: bytes | None = None
        self._cut_deliver = True
        self.cut_done = asyncio.Event()

    async def start(self) -> ChaosProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        """A Redis URL through the proxy (for the cache tier's own tests)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def forward(self) -> None:
        self._refusing = False
        self._flowing.set()

    def stall(self) -> None:
        self._flowing.clear()

    def cut_at(self, pattern: bytes, *, deliver: bool = True, after: bytes | None = None) -> None:
        """Cut the next connection that sends ``pattern`` (see the module docstring)."""
        self._cut_pattern = pattern
        self._cut_after = after
        self._cut_deliver = deliver
        self.cut_done.clear()

    def refuse(self) -> None:
        self._refusing = True
        self._flowing.set()
        for writer in list(self._writers):
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        link = _Link()
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, link, to_server=True)),
            asyncio.create_task(self._pump(up_reader, writer, link, to_server=False)),
        ]
        self._tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()
        self._tasks.difference_update(pumps)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        to_server: bool,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                if self._refusing:
                    return
                if to_server and self._cut_after is not None and self._cut_after in data:
                    link.armed = True
                if (
                    to_server
                    and self._cut_pattern is not None
                    and self._cut_pattern in data
                    and (self._cut_after is None or link.armed)
                ):
                    self._cut_pattern = None
                    if not self._cut_deliver:
                        self.cut_done.set()
                        return  # never reaches the server; the connection is cut
                    link.swallow_reply = True
                elif not to_server and link.swallow_reply:
                    self.cut_done.set()
                    return  # the server answered; the client never hears it
                writer.write(data)
                await writer.drain()

    async def aclose(self) -> None:
        self.refuse()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
