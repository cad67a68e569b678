"""A TCP proxy we own, put between memlayer and a Postgres or Redis server.

Cutting our own proxy fails only the client behind it; stopping a shared server would fail
everyone (every test suite, every process of a chaos run).

Modes: ``forward`` (normal), ``refuse`` (drop every connection at once and refuse new
ones: the server is dead or partitioned away), ``stall`` (connections stay open but nothing
moves either way: a hung server; what was held back is delivered after ``forward()``,
which is exactly the late reply a reused connection would misread).

One more fault, for a proxy built with an ``inspector``: ``cut_after_next_match()`` lets
the client's bytes that the inspector matches (e.g. the COMMIT of a write, see
``pgwire``) reach the server, then closes that connection before any reply comes back,
so the client cannot know whether its request took effect.

Tests use the same fault without an inspector: ``cut_at(pattern)`` arms a one-shot cut of
the next connection whose client bytes contain ``pattern`` (e.g. ``b"COMMIT"``), optionally
only on a connection that sent ``after`` first (the COMMIT of a memory write, not of a
session check; statements must then travel as text). With ``deliver=False`` the matching
bytes never reach the server. ``cut_done`` is set once a connection has been cut.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol


class Inspector(Protocol):
    """Reads one connection's client-to-server bytes, in order."""

    def feed(self, data: bytes) -> bool:
        """True when ``data`` holds the request after which to cut the connection."""
        ...


class _Link:
    """One proxied connection: both directions, and whether replies still flow."""

    __slots__ = ("armed", "client", "inspector", "muted", "upstream")

    def __init__(
        self,
        client: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
        inspector: Inspector | None,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.inspector = inspector
        self.muted = False
        self.armed = False  # sent the ``after`` marker of a pending pattern cut

    def close(self) -> None:
        self.client.close()
        self.upstream.close()


class ChaosProxy:
    def __init__(
        self,
        upstream_port: int,
        upstream_host: str = "127.0.0.1",
        *,
        inspector: Callable[[], Inspector] | None = None,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._inspector = inspector
        self._cut: asyncio.Event | None = None
        self._pattern: bytes | None = None
        self._pattern_after: bytes | None = None
        self._pattern_deliver = True
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

    def refuse(self) -> None:
        self._refusing = True
        self._flowing.set()
        for link in list(self._links):
            link.close()

    def cut_after_next_match(self) -> asyncio.Event:
        """Arm a one-shot cut; the event is set once a connection has been cut."""
        if self._inspector is None:
            raise RuntimeError("this proxy has no inspector: build it with inspector=...")
        self._cut = asyncio.Event()
        return self._cut

    def cut_at(self, pattern: bytes, *, deliver: bool = True, after: bytes | None = None) -> None:
        """Arm a one-shot cut of the next connection that sends ``pattern`` (see above)."""
        self._pattern = pattern
        self._pattern_after = after
        self._pattern_deliver = deliver
        self.cut_done.clear()

    def disarm(self) -> None:
        self._cut = None
        self._pattern = None

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
        link = _Link(writer, up_writer, self._inspector() if self._inspector else None)
        self._links.add(link)
        pumps = [
            asyncio.create_task(self._pump(reader, link, upstream=True)),
            asyncio.create_task(self._pump(up_reader, link, upstream=False)),
        ]
        self._tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        self._links.discard(link)
        link.close()
        self._tasks.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, link: _Link, *, upstream: bool) -> None:
        writer = link.upstream if upstream else link.client
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                if self._refusing or link.muted:
                    return
                cut = upstream and (self._matches(link, data) or self._pattern_matches(link, data))
                if cut:
                    link.muted = True  # no reply may reach the client from here on
                    deliver, self._pattern_deliver = self._pattern_deliver, True
                    if deliver:
                        writer.write(data)
                        await writer.drain()
                    link.close()
                    if self._cut is not None:
                        self._cut.set()
                        self._cut = None
                    self.cut_done.set()
                    return
                writer.write(data)
                await writer.drain()

    def _matches(self, link: _Link, data: bytes) -> bool:
        """Feed the connection's inspector (always, to keep its parse in step)."""
        if link.inspector is None:
            return False
        return link.inspector.feed(data) and self._cut is not None

    def _pattern_matches(self, link: _Link, data: bytes) -> bool:
        if self._pattern is None:
            return False
        if self._pattern_after is not None and self._pattern_after in data:
            link.armed = True
        if self._pattern in data and (self._pattern_after is None or link.armed):
            self._pattern = None
            return True
        return False

    async def aclose(self) -> None:
        self.refuse()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
