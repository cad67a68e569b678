"""Reads issued in the same event-loop iteration run as one batch.

Concurrent ``aget``/``asearch`` calls of one process (a LangGraph app's parallel nodes, a
server's concurrent requests) each cost a Redis round trip on their own; issued within one
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
        """The first request yields the loop once, so every request that becomes ready
        meanwhile joins it; alone, it runs inline (the uncontended fast path: no task, no
        hand-over); joined, the batch runs as a task of its own, so one caller's
        cancellation never stops the others' reads."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((request, future))
        if len(self._pending) > 1:
            return await future  # the first request of this iteration runs us all
        try:
            await asyncio.sleep(0)  # one iteration: every request ready now may join
        except asyncio.CancelledError:
            future.cancel()
            self._start(self._take())  # the others still get theirs
            raise
        batch = self._take()
        if len(batch) == 1:
            [result] = await self._run([request])
            return result
        self._start(batch)
        return await future

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch, self._pending = self._pending, []
        return batch

    def _start(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        if any(not future.done() for _, future in batch):
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
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
