"""Time to live: defaults, per-put TTLs, coalesced refreshes, and the sweeper.

- **Expiry.** Every read filters ``expires_at > now`` in SQL, so an expired item is never
  returned, searched or listed, whether or not a sweep ran. TTLs are minutes as floats,
  kept exactly (``ttl=0.5`` is thirty seconds, never rounded to a whole minute).
- **Refresh on read never writes in the read.** A read only notes the TTL items it returned
  whose expiry was set at least ``S = min(store_ttl_refresh_interval_seconds, TTL / 2)``
  ago. A background task writes what was noted ``F = store_ttl_refresh_flush_seconds``
  after the first note, as ONE ``UPDATE`` for all of them: at most one refresh statement
  per ``F`` per process (1 s by default), whatever the read rate. That ``UPDATE`` checks the
  ``S`` rule again in SQL, so an item's row is written at most once per ``S`` (60 s by
  default) however many readers and processes read it. Items without a TTL are never
  noted: reading them never writes. The price, stated: a refreshed item expires between
  ``TTL - S`` and ``TTL + F`` after its last read; a refresh lost with its process (or to
  an outage) leaves the item expiring ``TTL`` after its previous refresh.
- **The sweeper** deletes expired rows every ``sweep_interval_minutes`` (in chunks, skipping
  rows other sweepers hold), to reclaim space; correctness never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from langgraph.store.base import TTLConfig

from memlayer.settings import Settings
from memlayer.store.errors import InvalidOperation, StoreError
from memlayer.store.repository import ItemRow, StoreRepository

log = logging.getLogger(__name__)

_KNOWN_KEYS = {"default_ttl", "refresh_on_read", "sweep_interval_minutes", "omit_expired"}


def check_ttl(ttl: object) -> float | None:
    """A per-put TTL in minutes: None (never expires) or a positive, finite number."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidOperation(f"ttl is minutes as a number, got {ttl!r}")
    if not math.isfinite(ttl) or ttl <= 0:
        raise InvalidOperation(f"ttl must be a positive number of minutes, got {ttl!r}")
    return float(ttl)


@dataclass(frozen=True, slots=True)
class TTLPolicy:
    default_minutes: float | None
    refresh_on_read: bool
    refresh_interval_seconds: float
    refresh_flush_seconds: float
    sweep_interval_minutes: float | None

    @classmethod
    def resolve(cls, ttl: TTLConfig | None, settings: Settings) -> TTLPolicy:
        """An explicit ``TTLConfig`` wins key by key over the ``MEMLAYER_STORE_*`` settings."""
        given: dict[str, Any] = dict(ttl or {})
        unknown = set(given) - _KNOWN_KEYS
        if unknown:
            raise InvalidOperation(f"unknown TTLConfig keys: {', '.join(sorted(unknown))}")
        if given.get("omit_expired") is False:
            raise InvalidOperation(
                "omit_expired=False is not offered: memlayer's store never returns expired items"
            )
        sweep = given.get("sweep_interval_minutes", settings.store_ttl_sweep_interval_minutes)
        if sweep is not None and (isinstance(sweep, bool) or sweep < 0):
            raise InvalidOperation(f"sweep_interval_minutes must be >= 0, got {sweep!r}")
        return cls(
            default_minutes=check_ttl(given.get("default_ttl", settings.store_default_ttl_minutes)),
            refresh_on_read=bool(given.get("refresh_on_read", settings.store_ttl_refresh_on_read)),
            refresh_interval_seconds=settings.store_ttl_refresh_interval_seconds,
            refresh_flush_seconds=settings.store_ttl_refresh_flush_seconds,
            sweep_interval_minutes=float(sweep) if sweep else None,
        )

    def config(self) -> TTLConfig:
        """The ``TTLConfig`` that ``BaseStore``'s methods read their defaults from."""
        config = TTLConfig(
            refresh_on_read=self.refresh_on_read,
            default_ttl=self.default_minutes,
            omit_expired=True,
        )
        if self.sweep_interval_minutes is not None:
            config["sweep_interval_minutes"] = self.sweep_interval_minutes  # type: ignore[typeddict-item]
        return config

    def slack_seconds(self, ttl_minutes: float) -> float:
        return min(self.refresh_interval_seconds, ttl_minutes * 30.0)

    def is_due(self, row: ItemRow, now: datetime) -> bool:
        """Whether a read of ``row`` should push its expiry forward (see the module doc)."""
        if row.ttl_minutes is None or row.expires_at is None:
            return False
        last_set = row.expires_at - timedelta(minutes=row.ttl_minutes)
        return now - last_set >= timedelta(seconds=self.slack_seconds(row.ttl_minutes))


class Refresher:
    """Collects due TTL refreshes and writes them in batches, off the read path."""

    def __init__(self, repository: StoreRepository, policy: TTLPolicy) -> None:
        self._repository = repository
        self._policy = policy
        self._pending: dict[tuple[str, str], float] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.after_flush: Callable[[int], None] | None = None  # a seam for tests

    def note(self, rows: Iterable[ItemRow]) -> None:
        now = datetime.now(UTC)
        added = False
        for row in rows:
            if row.ttl_minutes is not None and self._policy.is_due(row, now):
                self._pending[(row.namespace, row.key)] = row.ttl_minutes
                added = True
        if added:
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name="memlayer-store-ttl-refresh")
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write every noted refresh now; returns how many rows were refreshed."""
        async with self._lock:
            if not self._pending:
                return 0
            due = [(n, k, ttl) for (n, k), ttl in self._pending.items()]
            self._pending = {}
            try:
                written = await self._repository.refresh_expiry(
                    due, self._policy.refresh_interval_seconds
                )
            except StoreError as exc:
                # Best effort by design: the item then expires TTL after its last refresh.
                log.warning("store TTL refresh of %d items failed: %s", len(due), exc)
                written = 0
        if self.after_flush is not None:
            self.after_flush(written)
        return written

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # The coalescing window: a timer, not synchronisation.
            await asyncio.sleep(self._policy.refresh_flush_seconds)
            self._wake.clear()
            await self.flush()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


class Sweeper:
    """Deletes expired items every ``interval_minutes``, in the background."""

    def __init__(self, repository: StoreRepository, interval_minutes: float) -> None:
        self._repository = repository
        self._interval = interval_minutes * 60.0
        self._task: asyncio.Task[None] | None = None
        self.after_sweep: Callable[[int], None] | None = None  # a seam for tests

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="memlayer-store-ttl-sweeper")

    async def sweep(self) -> int:
        deleted = await self._repository.sweep()
        if deleted:
            log.info("store sweeper deleted %d expired items", deleted)
        if self.after_sweep is not None:
            self.after_sweep(deleted)
        return deleted

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)  # a timer, not synchronisation
            try:
                await self.sweep()
            except StoreError as exc:
                log.warning("store sweep failed (retried next interval): %s", exc)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
