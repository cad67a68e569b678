"""The outbox drainer: every process installs the markers writers could not.

Every ``outbox_drain_interval_ms`` it takes the outbox rows older than
``outbox_grace_ms`` (oldest first, ``FOR UPDATE SKIP LOCKED``, so drainers of several
processes never wait for each other or take the same row), installs a versioned marker
for each in Redis through the installer registered for the row's family, and deletes
the rows in the same transaction. If Redis cannot be told, the transaction rolls back
(the rows stay) and the drainer backs off. A family whose installer cannot install now
(its breaker is open) is not even queried: no waiting on a dead Redis.

The grace period leaves a row to its writer, whose write-through and acknowledgement
usually clear it first; the drainer is for writers that timed out, were partitioned,
cancelled or killed. Grace plus interval (plus one round of statements) is the outbox's
part of the coherence bound. Each process also counts the backlog and the age of the
oldest row every ``outbox_stats_interval_seconds`` for the gauges and the alert.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from memlayer.cache import MarkerInstall, MarkerInstaller
from memlayer.cache.background import cancel_and_wait
from memlayer.memory import outbox
from memlayer.memory.db import Database
from memlayer.memory.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_DRAINED,
    OUTBOX_FAILURES,
    OUTBOX_OLDEST_AGE,
)
from memlayer.settings import Settings

log = logging.getLogger(__name__)

_DB_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
_DRAIN_FAILURES = OUTBOX_FAILURES.labels("drain")
_MAX_BACKOFF_S = 2.0  # a failing Postgres is not hammered; Redis down = breaker open, no rounds

# Whether a family's installer can take markers now (its breaker is closed).
Ready = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class DrainRound:
    """What one round did: rows drained, and whether Redis or Postgres failed it."""

    drained: int
    failed: bool = False
    full: bool = False  # a whole batch: more may be due at once


class OutboxDrainer:
    __slots__ = (
        "_batch",
        "_database",
        "_grace_s",
        "_installers",
        "_interval_s",
        "_stats_s",
        "_task",
    )

    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._grace_s = settings.outbox_grace_ms / 1000
        self._interval_s = settings.outbox_drain_interval_ms / 1000
        self._batch = settings.outbox_drain_batch
        self._stats_s = settings.outbox_stats_interval_seconds
        self._installers: dict[str, tuple[MarkerInstaller, Ready]] = {}
        self._task: asyncio.Task[None] | None = None

    def register(self, family: str, installer: MarkerInstaller, ready: Ready) -> None:
        """Drain ``family``'s rows through ``installer`` (while ``ready()`` is true)."""
        self._installers[family] = (installer, ready)

    def unregister(self, family: str, installer: MarkerInstaller) -> None:
        """Stop draining ``family`` through ``installer`` (one that closes before us)."""
        registered = self._installers.get(family)
        if registered is not None and registered[0] is installer:
            del self._installers[family]

    def start(self) -> None:
        """Run in the background until :meth:`aclose` (the app's lifespan does this)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def drain_once(self) -> DrainRound:
        """One round: take due rows, install their markers, delete them — or roll back."""
        families = [family for family, (_, ready) in self._installers.items() if ready()]
        if not families:
            return DrainRound(0)
        try:
            async with self._database.engine.connect() as conn, conn.begin() as transaction:
                due = await outbox.take_due(conn, families, self._grace_s, self._batch)
                if not due:
                    return DrainRound(0)
                by_family: dict[str, list[tuple[str, int]]] = defaultdict(list)
                for entry in due:
                    by_family[entry.family].append((entry.entity_id, entry.version))
                for family, entries in by_family.items():
                    installer, _ = self._installers[family]
                    if await installer.install_markers(entries) is MarkerInstall.UNAVAILABLE:
                        await transaction.rollback()  # the rows stay for a later round
                        _DRAIN_FAILURES.inc()
                        return DrainRound(0, failed=True)
        except _DB_ERRORS as exc:
            _DRAIN_FAILURES.inc()
            log.warning("outbox: drain round failed (%s); retrying", exc)
            return DrainRound(0, failed=True)
        for family, entries in by_family.items():
            OUTBOX_DRAINED.labels(family).inc(len(entries))
        return DrainRound(len(due), full=len(due) >= self._batch)

    async def count_backlog(self) -> outbox.Backlog | None:
        """Refresh the backlog gauges; None if Postgres did not answer."""
        try:
            async with self._database.engine.connect() as conn:
                backlog = await outbox.backlog(conn)
        except _DB_ERRORS as exc:
            log.warning("outbox: cannot count the backlog (%s)", exc)
            return None
        OUTBOX_BACKLOG.set(backlog.rows)
        OUTBOX_OLDEST_AGE.set(backlog.oldest_age_s)
        return backlog

    async def _run(self) -> None:
        backoff = self._interval_s
        next_stats = 0.0
        while True:
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + self._stats_s
                await self.count_backlog()
            result = await self.drain_once()
            if result.failed:
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                await asyncio.sleep(backoff)
                continue
            backoff = self._interval_s
            if not result.full:
                await asyncio.sleep(self._interval_s)
