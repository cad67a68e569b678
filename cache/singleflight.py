"""Per-process single-flight: concurrent callers for one key share one execution.

The shared work runs in its own task, and each caller awaits it through
``asyncio.shield``: a caller that is cancelled (client went away, request timeout)
stops waiting, but the load keeps running for everyone else. An exception raised by
the work is delivered to every waiter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Deduplicates concurrent calls per key within one event loop."""

    __slots__ = ("_flights",)

    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def do(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` unless a call for ``key`` is in flight; either way, await its result."""
        task = self._flights.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._flights[key] = task
            task.add_done_callback(partial(self._done, key))
        return await asyncio.shield(task)

    def _done(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        # Mark the exception retrieved: if every waiter was cancelled nobody else will,
        # and asyncio would log "exception was never retrieved".
        if not task.cancelled():
            task.exception()

    async def cancel_all(self) -> None:
        """Stop every shared load (shutdown only)."""
        tasks = list(self._flights.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
