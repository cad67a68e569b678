"""Tasks the cache tier starts on its own and must stop when it closes.

Recovery probes, dirty-set flushes, the generation refresher and lease releases after a
cancelled fill run in the background; keeping a reference to each is what stops asyncio
from garbage-collecting a running task, and lets ``aclose()`` cancel them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundTasks:
    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_all(self) -> None:
        await cancel_and_wait(*self._tasks)


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel tasks and wait until they are done, cancelling again if need be.

    Python 3.11's ``asyncio.wait_for`` (used inside some clients, fakeredis among them)
    loses a cancellation that arrives as the awaited result does; a background loop
    would then run on. Re-cancelling until every task has finished makes stopping sure.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: a loop that failed must not log "never retrieved"
