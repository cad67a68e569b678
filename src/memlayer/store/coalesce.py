"""Reads issued in the same event-loop iteration run as one batch.

Concurrent ``aget``/``asearch`` calls of one process (a LangGraph app's parallel nodes, a
server's concurrent requests) each cost a Redis round trip on their own; made in the same
iteration of the event loop they are run as ONE read batch instead: one MGET for every
namespace they touch, one statement for whatever needs Postgres. ``AsyncPostgresStore``
batches concurrent calls the same way (``AsyncBatchedBaseStore``), writes and all, and a
bad op there fails every caller of its batch; here only reads are combined, each caller's
ops are validated before they join, and a batch starts only after every read in it was
issued (so no read joins work that began before it, as the coherence rules require).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class TickBatches(Generic[T, R]):
    """``submit(request)`` -> its result; requests of one loop iteration run together."""

    __slots__ = ("_pending", "_run", "_tasks")

    def __init__(self, run: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._run = run
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def submit(self, request: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((request, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._run_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        live = [(request, future) for request, future in batch if not future.done()]
        if not live:
            return
        try:
            results = await self._run([request for request, _ in live])
        except asyncio.CancelledError:
            for _, future in live:
                future.cancel()
            raise
        except Exception as exc:  # the batch's own error is every caller's
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def aclose(self) -> None:
        """Let batches in flight finish (their callers are waiting for them)."""
        while self._tasks or self._pending:
            if self._pending:
                await asyncio.sleep(0)  # the scheduled flush runs first
                continue
            await asyncio.gather(*self._tasks, return_exceptions=True)
