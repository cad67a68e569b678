"""The consistency checker: cached versions compared with Postgres, in the spirit of Polaris.

The coherence bound is measured, not assumed. A sampler in every process compares, every
``consistency_check_interval_ms``, the version in Redis (the value's header only:
GETRANGE, never the payload) with ``memory_versions`` in Postgres, for users written
recently (between the bound and ``consistency_check_window_seconds`` ago: the ones that
should have converged) plus a random sample. Each comparison is

* ``consistent``: Redis holds the Postgres version or newer, or an older one for less
  than the bound (a write-through in flight);
* ``stale``: Redis holds an older complete value, and Postgres has held the newer
  version for longer than the bound (the alert fires on any);
* ``missing``: nothing servable is cached (no key, or a marker: readers reload).

The staleness observed is the age of Postgres's current version when Redis holds an
older complete value: a lower bound of how long readers could have been served it.
``memlayer cache verify`` runs the same comparison over a sample or every user.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from memlayer.cache import CachedVersion, ContextCache
from memlayer.cache.background import cancel_and_wait
from memlayer.memory.db import Database
from memlayer.memory.metrics import (
    CHECK_CONSISTENT,
    CHECK_MISSING,
    CHECK_STALE,
    CONSISTENCY_STALENESS,
)
from memlayer.memory.models import MemoryVersion, utcnow
from memlayer.settings import Settings

log = logging.getLogger(__name__)

_DB_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


class CheckResult(StrEnum):
    CONSISTENT = "consistent"
    STALE = "stale"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class DatabaseVersion:
    user_id: int
    version: int
    age_s: float  # how long Postgres has held this version


@dataclass(frozen=True, slots=True)
class Verdict:
    result: CheckResult
    staleness_s: float | None = None  # set when Redis holds an older complete value


def judge(db: DatabaseVersion, cached: CachedVersion | None, bound_s: float) -> Verdict:
    """One comparison (pure: the unit tests' specification)."""
    if cached is None or not cached.complete:
        return Verdict(CheckResult.MISSING)
    if cached.version >= db.version:
        return Verdict(CheckResult.CONSISTENT)
    staleness = max(0.0, db.age_s)
    result = CheckResult.STALE if staleness > bound_s else CheckResult.CONSISTENT
    return Verdict(result, staleness)


@dataclass
class Tally:
    """Counts of one round or one audit, and the worst staleness seen."""

    checked: int = 0
    consistent: int = 0
    stale: int = 0
    missing: int = 0
    worst_staleness_s: float = 0.0
    stale_users: list[int] = field(default_factory=list)

    def add(self, user_id: int, verdict: Verdict) -> None:
        self.checked += 1
        if verdict.result is CheckResult.CONSISTENT:
            self.consistent += 1
        elif verdict.result is CheckResult.STALE:
            self.stale += 1
            if len(self.stale_users) < 20:
                self.stale_users.append(user_id)
        else:
            self.missing += 1
        if verdict.staleness_s is not None:
            self.worst_staleness_s = max(self.worst_staleness_s, verdict.staleness_s)

    def merge(self, other: Tally) -> None:
        self.checked += other.checked
        self.consistent += other.consistent
        self.stale += other.stale
        self.missing += other.missing
        self.worst_staleness_s = max(self.worst_staleness_s, other.worst_staleness_s)
        self.stale_users.extend(other.stale_users[: max(0, 20 - len(self.stale_users))])


async def compare(
    cache: ContextCache, versions: Sequence[DatabaseVersion], bound_s: float, *, export: bool
) -> Tally | None:
    """Compare these users' cached headers with their Postgres versions.

    None when Redis cannot be asked now (breaker open, epoch unsure). ``export`` feeds
    the Prometheus metrics (the background sampler; an audit only prints).
    """
    tally = Tally()
    if not versions:
        return tally
    cached = await cache.cached_versions([v.user_id for v in versions])
    if cached is None:
        return None
    for db, held in zip(versions, cached, strict=True):
        verdict = judge(db, held, bound_s)
        tally.add(db.user_id, verdict)
        if not export:
            continue
        if verdict.staleness_s is not None:
            CONSISTENCY_STALENESS.observe(verdict.staleness_s)
        if verdict.result is CheckResult.CONSISTENT:
            CHECK_CONSISTENT.inc()
        elif verdict.result is CheckResult.STALE:
            CHECK_STALE.inc()
            log.error(
                "consistency: user %s cached at v%s, Postgres at v%s for %.1f s (bound %.1f s)",
                db.user_id,
                held.version if held else None,
                db.version,
                db.age_s,
                bound_s,
            )
        else:
            CHECK_MISSING.inc()
    return tally


# --- what to compare ------------------------------------------------------------------

_PG_SAMPLE = text(
    """
(SELECT user_id, version, EXTRACT(EPOCH FROM now() - updated_at)::float8 AS age
   FROM memory_versions
  WHERE updated_at >= now() - make_interval(secs => :window)
    AND updated_at <= now() - make_interval(secs => :bound)
  ORDER BY updated_at DESC
  LIMIT :recent)
UNION
(SELECT user_id, version, EXTRACT(EPOCH FROM now() - updated_at)::float8 AS age
   FROM memory_versions
  WHERE user_id >= (SELECT min(user_id) + floor(random() * (max(user_id) - min(user_id) + 1))
                      FROM memory_versions)
  ORDER BY user_id
  LIMIT :random)
"""
)
_PG_PAGE = text(
    """
SELECT user_id, version, EXTRACT(EPOCH FROM now() - updated_at)::float8 AS age
  FROM memory_versions WHERE user_id > :after ORDER BY user_id LIMIT :limit
"""
)
_PG_RANDOM = text(
    """
SELECT user_id, version, EXTRACT(EPOCH FROM now() - updated_at)::float8 AS age
  FROM memory_versions ORDER BY random() LIMIT :limit
"""
)


async def sample(
    database: Database, *, window_s: float, bound_s: float, recent: int, random: int
) -> list[DatabaseVersion]:
    """Recently written users (that should have converged) plus a random sample."""
    async with database.engine.connect() as conn:
        if database.is_postgres:
            rows = await conn.execute(
                _PG_SAMPLE,
                {"window": window_s, "bound": bound_s, "recent": recent, "random": random},
            )
            return [DatabaseVersion(int(r[0]), int(r[1]), float(r[2])) for r in rows]
        found = await conn.execute(
            select(MemoryVersion.user_id, MemoryVersion.version, MemoryVersion.updated_at)
            .order_by(func.random())
            .limit(recent + random)
        )
        now = utcnow()
        return [DatabaseVersion(r[0], r[1], (now - r[2]).total_seconds()) for r in found]


async def every_user(database: Database, page: int = 1000) -> AsyncIterator[list[DatabaseVersion]]:
    """Every user's version, a page at a time (keyset pagination by user id)."""
    after = 0
    while True:
        async with database.engine.connect() as conn:
            if database.is_postgres:
                rows = list(await conn.execute(_PG_PAGE, {"after": after, "limit": page}))
                batch = [DatabaseVersion(int(r[0]), int(r[1]), float(r[2])) for r in rows]
            else:
                found = await conn.execute(
                    select(MemoryVersion.user_id, MemoryVersion.version, MemoryVersion.updated_at)
                    .where(MemoryVersion.user_id > after)
                    .order_by(MemoryVersion.user_id)
                    .limit(page)
                )
                now = utcnow()
                batch = [DatabaseVersion(r[0], r[1], (now - r[2]).total_seconds()) for r in found]
        if not batch:
            return
        yield batch
        after = batch[-1].user_id


async def random_users(database: Database, n: int) -> list[DatabaseVersion]:
    """``n`` users chosen at random (an audit; a full scan is fine for a command)."""
    async with database.engine.connect() as conn:
        if database.is_postgres:
            rows = await conn.execute(_PG_RANDOM, {"limit": n})
            return [DatabaseVersion(int(r[0]), int(r[1]), float(r[2])) for r in rows]
    return await sample(database, window_s=0.0, bound_s=0.0, recent=0, random=n)


# --- the background sampler -----------------------------------------------------------


class ConsistencySampler:
    """Runs :func:`sample` + :func:`compare` every interval, exporting the metrics."""

    __slots__ = ("_bound_s", "_cache", "_database", "_interval_s", "_settings", "_task")

    def __init__(self, database: Database, cache: ContextCache, settings: Settings) -> None:
        self._database = database
        self._cache = cache
        self._settings = settings
        self._bound_s = settings.coherence_bound_ms / 1000
        self._interval_s = settings.consistency_check_interval_ms / 1000
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval_s > 0 and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def check_once(self) -> Tally | None:
        """One round; None if Postgres or Redis could not be asked."""
        s = self._settings
        try:
            versions = await sample(
                self._database,
                window_s=s.consistency_check_window_seconds,
                bound_s=self._bound_s,
                recent=s.consistency_check_recent,
                random=s.consistency_check_random,
            )
        except _DB_ERRORS as exc:
            log.warning("consistency: cannot sample Postgres (%s)", exc)
            return None
        return await compare(self._cache, versions, self._bound_s, export=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.check_once()
