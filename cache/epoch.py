"""Noticing that Redis lost data, and turning the cache over so nothing older is served.

Redis can come back with less than it had: a restart without persistence, a restore
from an older snapshot, a failover to a replica that missed writes, a FLUSHALL. Then it
may hold contexts older than Postgres, and markers the outbox installed may be gone.

Redis holds an *epoch record* (``keys.epoch_key``): the cache generation and the run id
of the server that took it. Every process checks it every ``cache_epoch_check_ms`` (one
round trip: GET and INFO server, pipelined; the record alone on a cluster or a server
that refuses INFO). The cache *turns over* when

* the record is missing or unreadable (flush, restart without data, eviction),
* its run id is not the server's (restart, restore, failover: a new process),
* its generation is lower than one this process or Postgres knows of.

A turnover persists ``max(everything known) + 1`` in Postgres FIRST (the generation
floor, ``GREATEST``), then installs it in Redis by a script that only raises. Keys are
named by generation, so every old value is orphaned at once (they expire by TTL). A
process never adopts a lower generation than one it has read; while a turnover cannot
be completed (Postgres down), the process reads nothing from Redis.

Between the loss and its detection a process could serve what the damaged Redis holds,
for up to ``cache_epoch_check_ms``. Where the server tells its run id, that window is
closed too: every new connection proves it reaches the verified server
(``server_identity``), and after a restart or a failover every command runs on a new
connection. Only a loss without a new server (FLUSHALL, eviction of the record) still
waits for the next check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from enum import StrEnum

from memlayer.cache import metrics
from memlayer.cache.epoch_record import EpochRecord
from memlayer.cache.errors import FloorUnavailable
from memlayer.cache.port import GenerationFloor
from memlayer.cache.server_identity import ServerIdentityGuard, verifying_epoch
from memlayer.cache.singleflight import SingleFlight
from memlayer.cache.state import TierState
from memlayer.cache.store import ContextStore

log = logging.getLogger("memlayer.cache")


class TurnoverReason(StrEnum):
    EPOCH_MISSING = "epoch_missing"
    RUN_CHANGED = "run_changed"
    GENERATION_BEHIND = "generation_behind"
    DIRTY_OVERFLOW = "dirty_overflow"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Adopt ``generation`` (the record is sound), or turn over for ``turnover``."""

    generation: int = 0
    turnover: TurnoverReason | None = None


def judge(record: EpochRecord | None, run_id: str | None, known: int, floor: int) -> Verdict:
    """What an epoch check concludes (pure: the unit tests' specification).

    ``run_id`` is the server's current one (None when unknown: cluster, fakeredis);
    ``known`` the highest generation this process has read, ``floor`` Postgres's.
    """
    if record is None:
        return Verdict(turnover=TurnoverReason.EPOCH_MISSING)
    if run_id is not None and record.run_id != run_id:
        return Verdict(turnover=TurnoverReason.RUN_CHANGED)
    if record.generation < max(known, floor):
        return Verdict(turnover=TurnoverReason.GENERATION_BEHIND)
    return Verdict(generation=record.generation)


class InMemoryFloor:
    """A floor that lives as long as the process: for fakeredis tests and tools.

    It still keeps the generation monotonic within the process; across restarts of
    Redis *and* of every process only a durable floor (Postgres) can.
    """

    __slots__ = ("_generation",)

    def __init__(self) -> None:
        self._generation = 0

    async def read(self) -> int:
        return self._generation

    async def raise_to(self, generation: int) -> int:
        self._generation = max(self._generation, generation)
        return self._generation


class EpochWatch:
    """Checks the epoch record and turns the cache over when Redis lost data."""

    __slots__ = (
        "_ask_run_id",
        "_first",
        "_floor",
        "_floor_store",
        "_guard",
        "_lock",
        "_retry_at",
        "_retry_s",
        "_state",
        "_store",
    )

    def __init__(
        self,
        store: ContextStore,
        state: TierState,
        floor: GenerationFloor,
        *,
        ask_run_id: bool,
        retry_s: float,
    ) -> None:
        self._store = store
        self._state = state
        self._floor_store = floor
        self._floor: int | None = None  # Postgres's floor, once read
        self._ask_run_id = ask_run_id
        self._retry_s = retry_s
        self._retry_at = 0.0
        self._first: SingleFlight[None] = SingleFlight()
        # One check or turnover at a time per process: the watcher, a first load and a
        # write that found the record gone would otherwise turn over twice.
        self._lock = asyncio.Lock()
        self._guard = ServerIdentityGuard(state)
        if ask_run_id:
            store.on_new_connection(self._guard.on_connect)

    async def establish(self) -> None:
        """The first check of a process (or after a failed turnover), single-flighted and
        at most once per check interval while it keeps failing. Raises Redis errors."""
        if self._state.generation is not None or time.monotonic() < self._retry_at:
            return
        await self._first.do("epoch", self._establish_once)

    async def _establish_once(self) -> None:
        if self._state.generation is not None:
            return
        self._retry_at = time.monotonic() + self._retry_s
        await self.check()

    async def check(self) -> None:
        """One epoch check: adopt the record's generation, or turn over.

        Raises Redis errors (the caller counts them for the breaker). A turnover that
        cannot be persisted leaves the process reading nothing from Redis.
        """
        with verifying_epoch():
            async with self._lock:
                await self._check()

    async def _check(self) -> None:
        if self._ask_run_id:
            record, run_id = await self._store.read_epoch_and_run_id()
            if run_id is None:
                self._ask_run_id = False  # the server does not tell: the record alone
        else:
            record, run_id = await self._store.read_epoch(), None
        floor = await self._read_floor()
        verdict = judge(record, run_id, self._state.known_generation, floor)
        if verdict.turnover is None:
            self._guard.verified_run_id = run_id
            self._state.set_generation(verdict.generation)
            return
        await self._turn_over(verdict.turnover, record, run_id)

    async def turn_over(self, reason: TurnoverReason) -> None:
        """Persist a higher generation in Postgres, then in Redis; adopt it.

        Raises Redis errors. A Postgres failure is logged and leaves the process
        reading nothing from Redis until a later check completes the turnover.
        """
        with verifying_epoch():
            async with self._lock:
                await self._turn_over(reason)

    async def _turn_over(
        self,
        reason: TurnoverReason,
        record: EpochRecord | None = None,
        run_id: str | None = None,
    ) -> None:
        state = self._state
        # Stop trusting what Redis holds at once: loads go to the database meanwhile.
        state.distrust()
        seen = record.generation if record is not None else 0
        if record is None and self._floor is not None and self._floor == 0:
            # A first start on a Redis that may hold keys of the pre-epoch scheme.
            seen = max(seen, await self._store.read_legacy_generation())
        target = max(state.known_generation, self._floor or 0, seen) + 1
        try:
            persisted = await self._floor_store.raise_to(target)
        except FloorUnavailable as exc:
            log.warning("cache: cannot turn the cache over (%s): %s", reason, exc)
            return
        self._floor = persisted
        if run_id is None and self._ask_run_id:
            _, run_id = await self._store.read_epoch_and_run_id()
        installed = await self._store.raise_epoch(persisted, run_id or "")
        self._guard.verified_run_id = run_id
        state.set_generation(installed.generation)
        if target == 1 and reason is TurnoverReason.EPOCH_MISSING:
            # Nothing was ever cached under this prefix: a first start, not a loss.
            log.info("cache: generation %d started (a fresh Redis)", installed.generation)
            return
        metrics.TURNOVERS.labels(str(reason)).inc()
        log.warning(
            "cache: turned over to generation %d (%s); older cached values are orphaned",
            installed.generation,
            reason,
        )

    async def for_write(self) -> int | None:
        """The generation to write into now (one GET), or None: defer, the outbox covers it.

        Writing into a generation other processes have left would be invisible to
        them, so writes read the record fresh. A higher generation is adopted; a
        missing or lower one means Redis lost data: the caller defers and the next
        check turns the cache over.
        """
        state = self._state
        if state.generation is None:
            return None
        record = await self._store.read_epoch()
        if record is None or record.generation < state.known_generation:
            return None
        state.set_generation(record.generation)
        return record.generation

    async def _read_floor(self) -> int:
        """Postgres's floor: read once per process (and raised by our own turnovers)."""
        if self._floor is None:
            try:
                self._floor = await self._floor_store.read()
            except FloorUnavailable as exc:
                log.warning("cache: generation floor unavailable, using what Redis says: %s", exc)
                return 0
        return self._floor
