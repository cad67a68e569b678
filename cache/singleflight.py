"""Per-process single-flight: concurrent callers for one key share one execution.

The shared work runs in its own task, and each caller awaits it through
``asyncio.shield``: a caller that is cancelled (client went away, request timeout)
stops waiting, but the load keeps running for everyone else. An exception raised by
the work is delivered to every waiter.

A caller may only join work that could have seen everything it must see (docs/architecture.md
invariant 7 and the coherence bound): :meth:`SingleFlight.forget` makes later callers
start afresh once this process acknowledged a write for the key, and ``max_age_s``
stops anyone joining work that began too long ago (a slow load in another process's
terms: its snapshot may predate writes acknowledged elsewhere since).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from functools import partial
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Deduplicates concurrent calls per key within one event loop."""

    __slots__ = ("_batches", "_flights", "_max_age")

    def __init__(self, max_age_s: float | None = None) -> None:
        self._flights: dict[Hashable, tuple[asyncio.Future[T], float]] = {}
        self._max_age = max_age_s
        self._batches: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._flights)

    async def do(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` unless a recent enough call for ``key`` is in flight; await it."""
        flight = self._flights.get(key)
        loop = asyncio.get_running_loop()
        task: asyncio.Future[T]
        if flight is None or (
            self._max_age is not None and loop.time() - flight[1] > self._max_age
        ):
            task = asyncio.ensure_future(work())
            self._flights[key] = (task, loop.time())
            task.add_done_callback(partial(self._done, key))
        else:
            task = flight[0]
        return await asyncio.shield(task)

    async def do_many(
        self,
        keys: Sequence[Hashable],
        work: Callable[[list[Hashable]], Awaitable[Mapping[Hashable, T]]],
    ) -> dict[Hashable, T]:
        """:meth:`do` for many keys: keys with recent enough work in flight join it; the
        rest run as ONE call of ``work(fresh keys)``, which later callers for any of those
        keys join (per key, under the same rules). ``work`` returns every key it got."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        waits: dict[Hashable, asyncio.Future[T]] = {}
        fresh: list[Hashable] = []
        for key in dict.fromkeys(keys):
            flight = self._flights.get(key)
            if flight is None or (self._max_age is not None and now - flight[1] > self._max_age):
                fresh.append(key)
            else:
                waits[key] = flight[0]
        if fresh:
            futures: dict[Hashable, asyncio.Future[T]] = {}
            for key in fresh:
                future: asyncio.Future[T] = loop.create_future()
                future.add_done_callback(partial(self._done, key))
                self._flights[key] = (future, now)
                futures[key] = waits[key] = future
            batch = asyncio.ensure_future(work(fresh))
            self._batches.add(batch)
            batch.add_done_callback(partial(self._settle, futures))
        return {key: await asyncio.shield(future) for key, future in waits.items()}

    def _settle(
        self, futures: dict[Hashable, asyncio.Future[T]], batch: asyncio.Task[Mapping[Hashable, T]]
    ) -> None:
        """Hand each key's future its part of the batch's result (or its error)."""
        self._batches.discard(batch)
        error: BaseException | None = None
        results: Mapping[Hashable, T] = {}
        if batch.cancelled():
            error = asyncio.CancelledError()
        elif batch.exception() is not None:
            error = batch.exception()
        else:
            results = batch.result()
        for key, future in futures.items():
            if future.done():
                continue
            if isinstance(error, asyncio.CancelledError):
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            elif key in results:
                future.set_result(results[key])
            else:
                future.set_exception(KeyError(key))

    def forget(self, key: Hashable) -> None:
        """Later callers for ``key`` start their own work; current waiters keep theirs."""
        self._flights.pop(key, None)

    def _done(self, key: Hashable, task: asyncio.Future[T]) -> None:
        flight = self._flights.get(key)
        if flight is not None and flight[0] is task:
            del self._flights[key]
        # Mark the exception retrieved: if every waiter was cancelled nobody else will,
        # and asyncio would log "exception was never retrieved".
        if not task.cancelled():
            task.exception()

    async def cancel_all(self) -> None:
        """Stop every shared load (shutdown only)."""
        tasks: list[asyncio.Future[Any]] = [task for task, _ in self._flights.values()]
        tasks.extend(self._batches)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
