"""Getting back to a view of Redis that loads may trust, and keeping it (invariant 7).

Three background duties, each ending in a :class:`~memlayer.cache.state.TierState`
change:

* **Epoch.** The first load establishes the generation (single-flighted, ``epoch``);
  then a watcher checks Redis's epoch record every ``cache_epoch_check_ms``, adopting
  newer generations of other processes and turning the cache over when Redis lost
  data. Write-throughs and markers read the record fresh themselves.
* **Dirty flush.** Users written while Redis could not be told get a versioned
  invalidation marker; past the dirty set's bound, one turnover instead. This is the
  process's own fast path: other processes learn of such writes from the outbox.
* **Breaker probe.** Once the cooldown is over, one probe pings Redis, checks the
  epoch and flushes the dirty set; only then does the breaker close, so no read can
  return a context older than an acknowledged write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from memlayer.cache.background import BackgroundTasks
from memlayer.cache.codec import encode_marker
from memlayer.cache.epoch import EpochWatch, TurnoverReason
from memlayer.cache.errors import REDIS_ERRORS
from memlayer.cache.state import TierState
from memlayer.cache.store import ContextStore

log = logging.getLogger("memlayer.cache")


class Recovery:
    __slots__ = (
        "_background",
        "_check_s",
        "_epoch",
        "_flush_task",
        "_probe_task",
        "_state",
        "_store",
        "_ttl",
        "_wake",
        "_watcher",
    )

    def __init__(
        self,
        store: ContextStore,
        state: TierState,
        background: BackgroundTasks,
        ttl: Callable[[], int],
        epoch: EpochWatch,
        check_s: float,
    ) -> None:
        self._store = store
        self._state = state
        self._background = background
        self._ttl = ttl
        self._epoch = epoch
        self._check_s = check_s
        self._watcher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._probe_task: asyncio.Task[bool] | None = None
        self._flush_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ epoch

    async def establish(self) -> None:
        """Learn the generation (first load, or after a failed turnover); start watching.

        A Redis failure counts for the breaker.
        """
        try:
            await self._epoch.establish()
        except REDIS_ERRORS as exc:
            self._state.redis_failed(exc)
            return
        self._state.redis_answered()
        self.watch()

    def watch(self) -> None:
        """Start the epoch watcher unless it runs already."""
        if self._watcher is None or self._watcher.done():
            self._watcher = self._background.spawn(self._watch_loop())

    def check_soon(self) -> None:
        """Check the epoch now (a write found the record missing or behind)."""
        self._wake.set()
        self.watch()

    async def _watch_loop(self) -> None:
        """Adopt generations of other processes, detect lost data; drive recovery."""
        state = self._state
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancellation that
            # arrives as the event is set, and the watcher would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._check_s):
                    await self._wake.wait()
            self._wake.clear()
            if not state.breaker.closed:
                self.probe_if_due()
                continue
            try:
                await self._epoch.check()
            except REDIS_ERRORS as exc:
                state.background_check_failed(exc)
                continue
            state.redis_answered()
            if state.dirty.pending:
                self.schedule_flush()

    async def turn_over(self, reason: TurnoverReason) -> None:
        """Turn the cache over now (ops, tests, dirty overflow). Raises Redis errors."""
        await self._epoch.turn_over(reason)

    # ---------------------------------------------------------------- breaker

    def probe_if_due(self) -> None:
        """Start the recovery probe once the breaker's cooldown is over."""
        if self._state.probe_due():
            self._probe_task = self._background.spawn(self._probe())

    async def recover(self) -> bool:
        """Probe now (ignoring the cooldown); True if the breaker is closed afterwards."""
        state = self._state
        if state.breaker.closed:
            if state.dirty.pending:
                await self._flush_quietly()
            return state.breaker.closed
        if state.probe_due(force=True):
            self._probe_task = self._background.spawn(self._probe())
        if self._probe_task is None:  # pragma: no cover - half-open implies a probe task
            return False
        return await asyncio.shield(self._probe_task)

    async def _probe(self) -> bool:
        state = self._state
        try:
            await self._store.ping()
            await self._epoch.check()  # Redis may have restarted during the outage
            await self._flush_dirty()
        except REDIS_ERRORS:
            state.probe_failed()
            return False
        if state.dirty.pending:  # a turnover could not be persisted: not yet
            state.probe_failed()
            return False
        # No await since _flush_dirty saw the dirty set empty: nothing can slip in.
        state.close_breaker()
        self.watch()
        return True

    # -------------------------------------------------------------- dirty set

    def schedule_flush(self) -> None:
        """With the breaker closed, retry invalidating dirty users in the background."""
        if self._state.breaker.closed and (self._flush_task is None or self._flush_task.done()):
            self._flush_task = self._background.spawn(self._flush_quietly())

    async def _flush_quietly(self) -> None:
        try:
            await self._flush_dirty()
        except REDIS_ERRORS as exc:
            self._state.redis_failed(exc)

    async def _flush_dirty(self) -> None:
        """Invalidate every dirty user (or turn over); raises Redis errors.

        Markers go into the generation this process reads: the dirty set only guards
        this process's own loads (other processes learn of the writes from the outbox).
        """
        state = self._state
        while state.dirty.pending:
            if state.take_overflow():
                try:
                    await self._epoch.turn_over(TurnoverReason.DIRTY_OVERFLOW)
                except REDIS_ERRORS:
                    state.restore_overflow()
                    raise
                if state.generation is None:  # the floor could not be raised: retry later
                    state.restore_overflow()
                    return
            generation = state.generation
            if generation is None:
                return
            entries = state.dirty.snapshot()
            await self._store.invalidate_many(
                [(user_id, encode_marker(version)) for user_id, version in entries],
                generation,
                self._ttl(),
            )
            for user_id, version in entries:
                state.mark_clean(user_id, version)
