"""The outbox of cache invalidations: what Redis is owed, kept in Postgres.

Every memory write records (family, entity, version) IN ITS OWN TRANSACTION (on
Postgres in the same statement as the version bump, ``repository``). The row says:
"Redis may not hold this version yet". It is cleared

* by the writer, once its write-through found Redis holding that version or a newer
  one (``acks``: batched, one statement per batch, off the request path); or
* by any process's drainer (``drainer``), which takes rows older than a grace period,
  installs a versioned marker for each in Redis and deletes them in one transaction.

So a writer that times out, is partitioned, is cancelled between COMMIT and the
write-through, or is killed, cannot leave other processes serving an older value for
longer than the grace period plus a drain interval (docs/architecture.md invariant 7).

The table is generic over key families (``family`` + ``entity_id`` as text): the
memory contexts use :data:`CONTEXT_FAMILY` with the user id; a LangGraph store can use
its own family for its namespaces. Nothing here knows what an entity is.

These are plain statements on the caller's connection or session; the caller owns the
transaction. Postgres gets one statement per call; SQLite (embedded, one process) gets
plain equivalents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import BigInteger, String

from memlayer.memory.models import CacheOutbox, utcnow

CONTEXT_FAMILY = "ctx"  # user memory contexts; entity_id = the user id


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    family: str
    entity_id: str
    version: int


@dataclass(frozen=True, slots=True)
class Backlog:
    rows: int
    oldest_age_s: float  # 0 when empty


def _dialect(bind: AsyncConnection | AsyncSession) -> str:
    engine = bind.bind if isinstance(bind, AsyncSession) else bind.engine
    if engine is None:  # pragma: no cover - sessions here are always bound
        raise ValueError("the outbox needs a bound session")
    return engine.dialect.name


async def record(session: AsyncSession, family: str, entity_id: str, version: int) -> None:
    """Owe Redis ``version`` of the entity (the highest owed wins; the age is kept).

    For families whose write cannot fold this into another statement (on Postgres the
    memory contexts do it in the version bump).
    """
    dialect = _dialect(session)
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(CacheOutbox).values(
        family=family, entity_id=entity_id, version=version, enqueued_at=utcnow()
    )
    greatest = "GREATEST" if dialect == "postgresql" else "max"
    stmt = stmt.on_conflict_do_update(
        index_elements=[CacheOutbox.family, CacheOutbox.entity_id],
        set_={"version": text(f"{greatest}(cache_outbox.version, excluded.version)")},
    )
    await session.execute(stmt)


async def record_many(
    bind: AsyncConnection | AsyncSession, family: str, entries: Sequence[tuple[str, int]]
) -> None:
    """Owe Redis several entities' versions in one statement (``record`` for many)."""
    if not entries:
        return
    dialect = _dialect(bind)
    module = postgresql if dialect == "postgresql" else sqlite
    now = utcnow()
    stmt = module.insert(CacheOutbox).values(
        [
            {"family": family, "entity_id": entity, "version": version, "enqueued_at": now}
            for entity, version in entries
        ]
    )
    greatest = "GREATEST" if dialect == "postgresql" else "max"
    stmt = stmt.on_conflict_do_update(
        index_elements=[CacheOutbox.family, CacheOutbox.entity_id],
        set_={"version": text(f"{greatest}(cache_outbox.version, excluded.version)")},
    )
    await bind.execute(stmt)


# Rows of the registered families older than the grace period, oldest first, that no
# other drainer holds, deleted in the caller's transaction (rolled back if Redis fails:
# the rows come back). One statement.
_PG_TAKE_DUE = text(
    """
DELETE FROM cache_outbox o
 USING (SELECT family, entity_id FROM cache_outbox
         WHERE family = ANY(CAST(:families AS text[]))
           AND enqueued_at < now() - make_interval(secs => :grace)
         ORDER BY enqueued_at
         LIMIT :limit
         FOR UPDATE SKIP LOCKED) due
 WHERE o.family = due.family AND o.entity_id = due.entity_id
RETURNING o.family, o.entity_id, o.version
"""
).bindparams(bindparam("families", type_=postgresql.ARRAY(String)))

# Acknowledged rows, in one statement: a row goes only if Redis holds its version.
_PG_ACKNOWLEDGE = text(
    """
DELETE FROM cache_outbox o
 USING unnest(CAST(:families AS text[]), CAST(:entities AS text[]),
              CAST(:versions AS bigint[])) AS a(family, entity_id, version)
 WHERE o.family = a.family AND o.entity_id = a.entity_id AND o.version <= a.version
"""
).bindparams(
    bindparam("families", type_=postgresql.ARRAY(String)),
    bindparam("entities", type_=postgresql.ARRAY(String)),
    bindparam("versions", type_=postgresql.ARRAY(BigInteger)),
)

_PG_BACKLOG = text(
    "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(enqueued_at)), 0) FROM cache_outbox"
)


async def take_due(
    conn: AsyncConnection, families: Sequence[str], grace_s: float, limit: int
) -> list[OutboxEntry]:
    """Take (delete, in the caller's transaction) up to ``limit`` rows due for draining."""
    if _dialect(conn) == "postgresql":
        rows = await conn.execute(
            _PG_TAKE_DUE, {"families": list(families), "grace": grace_s, "limit": limit}
        )
        return [OutboxEntry(r[0], r[1], r[2]) for r in rows]
    # SQLite (embedded: one process, writers serialised by the database lock).
    cutoff = utcnow() - timedelta(seconds=grace_s)
    found = await conn.execute(
        select(CacheOutbox.family, CacheOutbox.entity_id, CacheOutbox.version)
        .where(CacheOutbox.family.in_(list(families)), CacheOutbox.enqueued_at < cutoff)
        .order_by(CacheOutbox.enqueued_at)
        .limit(limit)
    )
    due = [OutboxEntry(r[0], r[1], r[2]) for r in found]
    await acknowledge(conn, due)
    return due


async def acknowledge(conn: AsyncConnection, entries: Sequence[OutboxEntry]) -> None:
    """Delete rows whose version Redis is known to hold (``version <= acked``)."""
    if not entries:
        return
    if _dialect(conn) == "postgresql":
        await conn.execute(
            _PG_ACKNOWLEDGE,
            {
                "families": [e.family for e in entries],
                "entities": [e.entity_id for e in entries],
                "versions": [e.version for e in entries],
            },
        )
        return
    for entry in entries:
        await conn.execute(
            delete(CacheOutbox).where(
                CacheOutbox.family == entry.family,
                CacheOutbox.entity_id == entry.entity_id,
                CacheOutbox.version <= entry.version,
            )
        )


async def backlog(conn: AsyncConnection) -> Backlog:
    """How many rows are owed and how old the oldest is (for the gauges and the alert)."""
    if _dialect(conn) == "postgresql":
        rows, age = (await conn.execute(_PG_BACKLOG)).one()
        return Backlog(int(rows), float(age))
    rows, oldest = (
        await conn.execute(select(func.count(), func.min(CacheOutbox.enqueued_at)))
    ).one()
    if not rows or oldest is None:
        return Backlog(0, 0.0)
    return Backlog(int(rows), max(0.0, (utcnow() - oldest).total_seconds()))
