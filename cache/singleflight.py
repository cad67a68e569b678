"""Per-process single-flight: concurrent callers for one key share one execution.

The shared work runs in its own task, and each caller awaits it through
``asyncio.shield``: a caller that is cancelled (client went away, request timeout)
stops waiting, but the load keeps running for everyone else. An exception raised by
the work is delivered to every waiter.

A caller may only join work that could have seen everything it must see (DESIGN.md
invariant 7 and the coherence bound): :meth:`SingleFlight.forget` makes later callers
start afresh once this process acknowledged a write for the key, and ``max_age_s``
stops anyone joining work that began too long ago (a slow load in another process's
terms: its snapshot may predate writes acknowledged elsewhere since).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Deduplicates concurrent calls per key within one event loop."""

    __slots__ = ("_flights", "_max_age")

    def __init__(self, max_age_s: float | None = None) -> None:
        self._flights: dict[Hashable, tuple[asyncio.Task[T], float]] = {}
        self._max_age = max_age_s

    def __len__(self) -> int:
        return len(self._flights)

    async def do(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` unless a recent enough call for ``key`` is in flight; await it."""
        flight = self._flights.get(key)
        loop = asyncio.get_running_loop()
        if flight is None or (
            self._max_age is not None and loop.time() - flight[1] > self._max_age
        ):
            task = asyncio.ensure_future(work())
            self._flights[key] = (task, loop.time())
            task.add_done_callback(partial(self._done, key))
        else:
            task = flight[0]
        return await asyncio.shield(task)

    def forget(self, key: Hashable) -> None:
        """Later callers for ``key`` start their own work; current waiters keep theirs."""
        self._flights.pop(key, None)

    def _done(self, key: Hashable, task: asyncio.Task[T]) -> None:
        flight = self._flights.get(key)
        if flight is not None and flight[0] is task:
            del self._flights[key]
        # Mark the exception retrieved: if every waiter was cancelled nobody else will,
        # and asyncio would log "exception was never retrieved".
        if not task.cancelled():
            task.exception()

    async def cancel_all(self) -> None:
        """Stop every shared load (shutdown only)."""
        tasks = [task for task, _ in self._flights.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
