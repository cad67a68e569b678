"""Getting back to a view of Redis that loads may trust, and keeping it (invariant 7).

Three background duties, each ending in a :class:`~memlayer.cache.state.TierState`
change:

* **Generation.** The first load reads the global generation (single-flighted); then
  a refresher re-reads it every ``cache_generation_refresh_seconds`` to pick up bumps
  of other processes, which may keep reading the previous generation's keys for at
  most that period. Write-throughs read it fresh themselves.
* **Dirty flush.** Users written while Redis could not be told get a versioned
  invalidation marker; past the dirty set's bound, one generation bump instead.
* **Breaker probe.** Once the cooldown is over, one probe pings Redis, re-reads the
  generation and flushes the dirty set; only then does the breaker close, so no read
  can return a context older than an acknowledged write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from memlayer.cache.background import BackgroundTasks
from memlayer.cache.codec import encode_marker
from memlayer.cache.errors import REDIS_ERRORS
from memlayer.cache.singleflight import SingleFlight
from memlayer.cache.state import TierState
from memlayer.cache.store import ContextStore

log = logging.getLogger("memlayer.cache")


class Recovery:
    __slots__ = (
        "_background",
        "_first_read",
        "_flush_task",
        "_probe_task",
        "_refresh_s",
        "_refresher",
        "_state",
        "_store",
        "_ttl",
    )

    def __init__(
        self,
        store: ContextStore,
        state: TierState,
        background: BackgroundTasks,
        ttl: Callable[[], int],
        refresh_s: float,
    ) -> None:
        self._store = store
        self._state = state
        self._background = background
        self._ttl = ttl
        self._refresh_s = refresh_s
        self._first_read: SingleFlight[None] = SingleFlight()
        self._refresher: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[bool] | None = None
        self._flush_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------- generation

    async def read_first_generation(self) -> None:
        """Learn the generation once per process; a failure counts for the breaker."""
        await self._first_read.do("generation", self._read_generation_once)

    async def _read_generation_once(self) -> None:
        state = self._state
        if state.generation is not None:
            return
        try:
            generation = await self._store.read_generation()
        except REDIS_ERRORS as exc:
            state.redis_failed(exc)
            return
        state.redis_answered()
        state.set_generation(generation)
        self.keep_generation_fresh()

    def keep_generation_fresh(self) -> None:
        """Start the refresher unless it runs already."""
        if self._refresher is None or self._refresher.done():
            self._refresher = self._background.spawn(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        """Pick up generation bumps of other processes; drive recovery when idle."""
        state = self._state
        while True:
            await asyncio.sleep(self._refresh_s)
            if not state.breaker.closed:
                self.probe_if_due()
                continue
            try:
                generation = await self._store.read_generation()
            except REDIS_ERRORS as exc:
                state.redis_failed(exc)
                continue
            state.redis_answered()
            state.set_generation(generation)
            if state.dirty.pending:
                self.schedule_flush()

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
            state.set_generation(await self._store.read_generation())
            await self._flush_dirty()
        except REDIS_ERRORS:
            state.probe_failed()
            return False
        # No await since _flush_dirty saw the dirty set empty: nothing can slip in.
        state.close_breaker()
        self.keep_generation_fresh()
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
        """Invalidate every dirty user (or bump the generation); raises Redis errors."""
        state = self._state
        while state.dirty.pending:
            if state.take_overflow():
                try:
                    generation = await self._store.bump_generation()
                except REDIS_ERRORS:
                    state.restore_overflow()
                    raise
                state.set_generation(generation)
                log.warning("cache: too many writes missed Redis; generation now %d", generation)
            generation = state.generation if state.generation is not None else 0
            for user_id, version in state.dirty.snapshot():
                await self._store.invalidate(
                    user_id, generation, encode_marker(version), self._ttl(), force=False
                )
                state.mark_clean(user_id, version)
