"""Clearing outbox rows whose write Redis already holds: batched, off the request path.

After a write-through found Redis holding the write's version (or a newer one), the
writer no longer needs a drainer to install a marker for it. Acknowledging costs the
request one dict update: a background task deletes the batch with ONE statement every
``outbox_ack_interval_ms``, or at once when ``outbox_ack_batch`` acks are waiting. The
task exists only while acks are waiting.

Acks are an optimisation, never a correctness step: a lost batch (the process dies, or
Postgres fails) only leaves rows a drainer will clear after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.exc import SQLAlchemyError

from memlayer.cache.background import cancel_and_wait
from memlayer.memory import outbox
from memlayer.memory.db import Database
from memlayer.memory.metrics import OUTBOX_ACKED, OUTBOX_FAILURES
from memlayer.settings import Settings

log = logging.getLogger(__name__)

_FAILURES = OUTBOX_FAILURES.labels("ack")
_DB_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


class OutboxAcks:
    __slots__ = ("_batch", "_database", "_interval", "_pending", "_task", "_wake")

    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._interval = settings.outbox_ack_interval_ms / 1000
        self._batch = settings.outbox_ack_batch
        self._pending: dict[tuple[str, str], int] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def ack(self, family: str, entity_id: str, version: int) -> None:
        """Redis holds ``version`` (or newer) of the entity: its outbox row may go."""
        key = (family, entity_id)
        if version > self._pending.get(key, 0):
            self._pending[key] = version
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        elif len(self._pending) >= self._batch:
            self._wake.set()

    @property
    def waiting(self) -> int:
        """Acks not yet written (for tests and the ops page)."""
        return len(self._pending)

    async def flush(self) -> None:
        """Write every waiting ack now (shutdown, tests)."""
        batch, self._pending = self._pending, {}
        await self._write(batch)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        await self.flush()

    async def _run(self) -> None:
        try:
            while self._pending:
                with contextlib.suppress(TimeoutError):  # not wait_for: see cache.recovery
                    async with asyncio.timeout(self._interval):
                        await self._wake.wait()
                self._wake.clear()
                batch, self._pending = self._pending, {}
                await self._write(batch)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _write(self, batch: dict[tuple[str, str], int]) -> None:
        if not batch:
            return
        entries = [outbox.OutboxEntry(f, e, v) for (f, e), v in batch.items()]
        try:
            async with self._database.engine.begin() as conn:
                await outbox.acknowledge(conn, entries)
        except _DB_ERRORS as exc:
            _FAILURES.inc()
            log.warning("outbox: %d acknowledgements not written (%s)", len(entries), exc)
            return
        for entry in entries:
            OUTBOX_ACKED.labels(entry.family).inc()
