"""Every statement the store sends, for Postgres and for the embedded SQLite.

Round trips per ``abatch`` (the statements are built per batch, not per op):

- all ``GetOp`` and ``SearchOp`` of a batch: ONE ``SELECT`` (a ``UNION ALL`` of one member
  for every get and one per search), in autocommit, so a read is one round trip and never
  a write. A search whose filter SQL cannot decide exactly reads a bounded first page of
  candidates; only when that page was not enough is a second, unbounded statement sent for
  the searches that need it.
- all ``ListNamespacesOp`` of a batch: ONE ``SELECT`` over ``store_namespaces``.
- all ``PutOp`` (puts and deletes) of a batch: ONE transaction, ``write()``, which owns it:
  create missing namespace rows (``INSERT .. ON CONFLICT DO NOTHING``), lock and bump
  versions and owe the cache the new ones (on Postgres ONE statement: ``UPDATE ..
  RETURNING`` and the outbox rows in a CTE), upsert the items, delete the deleted ones:
  four statements at most (inserts and deletes are chunked past 1,000 rows). With the
  cache on, a fifth reads back the changed namespaces for the write-through.
- the cache's fills: ONE statement for every namespace a batch missed (``load_namespaces``:
  each one's versions, whether it has descendants, and its newest live items up to a cap),
  on the read replica when one is configured and the caller allows it.

Every write owes the cache tier the new version of each namespace it changed (family
``ns``, entity = the namespace's digest, version = ``version + tree_version``): a row of
``cache_outbox`` in the write's own transaction, cleared by the writer's acknowledgement
or by a drainer (``memory.outbox``). Uncached processes write it too, so cached ones hear.

Postgres decides time with its own clock (``now()``), so several hosts agree; SQLite, being
one file on one machine, uses Python's. Driver exceptions are translated here, once: an
unreachable or overloaded database is ``StoreUnavailable``, anything else the database
refused is ``StoreError``. Deadlocks and serialization failures of a write are retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from memlayer.cache.keys import NAMESPACE_FAMILY, namespace_digest
from memlayer.memory import outbox
from memlayer.memory.models import UTCDateTime
from memlayer.store import namespaces as ns
from memlayer.store.errors import (
    StoreError,
    StoreNotMigrated,
    StoreUnavailable,
    StoreWriteOutcomeUnknown,
)
from memlayer.store.metrics import STATEMENTS
from memlayer.store.schema import store_items as items
from memlayer.store.schema import store_namespaces as spaces
from memlayer.store.values import NUL_ESCAPE

log = logging.getLogger(__name__)

_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout, OSError, asyncio.TimeoutError)
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
_WRITE_ATTEMPTS = 3
_CHUNK = 1000  # rows per multi-row statement: well under both drivers' parameter limits
# SQL LIMIT takes a signed 64-bit integer; a bigger Python limit means "all of them".
_MAX_SQL_LIMIT = 2**62

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_ITEM_COLUMNS = (
    items.c.namespace,
    items.c.key,
    items.c.value,
    items.c.created_at,
    items.c.updated_at,
    items.c.ttl_minutes,
    items.c.expires_at,
)


@dataclass(frozen=True, slots=True)
class ItemRow:
    """One stored item as read: its value still the stored JSON text."""

    namespace: str
    key: str
    value: str
    created_at: datetime
    updated_at: datetime
    ttl_minutes: float | None
    expires_at: datetime | None

    @property
    def order_key(self) -> tuple[int, str, str]:
        """The plain-search order: newest first, then namespace and key, bytewise."""
        return (-((self.updated_at - _EPOCH) // _MICROSECOND), self.namespace, self.key)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """One search as SQL sees it: a prefix, an optional pre-filter, and a page to fetch."""

    index: int
    prefix: str | None  # the prefix's text; None searches everything
    containment: dict[str, Any] | None  # a jsonb document every match contains (Postgres)
    limit: int | None  # None: every candidate
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Listing:
    """What SQL narrows one namespace listing by."""

    prefix: str | None
    min_depth: int


@dataclass(frozen=True, slots=True)
class ItemWrite:
    namespace: tuple[str, ...]
    key: str
    value: str | None  # JSON text, or None to delete
    ttl_minutes: float | None


@dataclass(frozen=True, slots=True)
class NamespaceRows:
    """One namespace as the cache stores it, read in one snapshot.

    ``version`` is the cache's combined version, ``version + tree_version`` (0: no row):
    it strictly increases whenever the namespace's items change or a namespace appears
    at or below it. ``items`` are its live items, newest first, at most the cap asked
    for; ``truncated`` says there were more. ``read_at``: the database's clock then.
    """

    namespace: str
    version: int
    has_descendants: bool
    items: tuple[ItemRow, ...]
    truncated: bool
    read_at: datetime


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What one write transaction changed, for the cache tier.

    ``versions``: each touched namespace's version after the write (namespaces that had no
    row, i.e. deletes where nothing ever was, are absent). ``tree_versions``: the new tree
    version of every namespace whose subtree gained a namespace. ``combined``: the cache
    version (``version + tree_version``) of every namespace the write changed (the root
    aside: it is never cached), as owed in the outbox. ``loaded``: those namespaces read
    back in the transaction (when asked for). ``at``: the transaction's timestamp, which
    is every written item's ``updated_at``.
    """

    versions: dict[str, int] = field(default_factory=dict)
    tree_versions: dict[str, int] = field(default_factory=dict)
    created: tuple[str, ...] = ()
    at: datetime | None = None
    combined: dict[str, int] = field(default_factory=dict)
    loaded: dict[str, NamespaceRows] = field(default_factory=dict)


class StoreRepository:
    """The store's SQL on one engine; reads in autocommit, each write one transaction.

    ``replica``: an engine on a read replica, used only by cache fills that allow it.
    """

    def __init__(self, engine: AsyncEngine, replica: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._replica = replica.execution_options(isolation_level="AUTOCOMMIT") if replica else None
        self._postgres = engine.dialect.name == "postgresql"

    @property
    def has_replica(self) -> bool:
        return self._replica is not None

    @property
    def is_postgres(self) -> bool:
        return self._postgres

    @property
    def engine(self) -> AsyncEngine:
        """The engine every statement goes through (a seam for tests and tooling)."""
        return self._engine

    # --- reads ---------------------------------------------------------------------

    async def read(
        self, gets: Sequence[tuple[str, str]], searches: Sequence[SearchQuery]
    ) -> tuple[dict[tuple[str, str], ItemRow], dict[int, list[ItemRow]]]:
        """Items by (namespace text, key), and each search's rows, in one statement."""
        found: dict[tuple[str, str], ItemRow] = {}
        pages: dict[int, list[ItemRow]] = {q.index: [] for q in searches}
        if not gets and not searches:
            return found, pages
        now = self._now()
        members: list[Select[Any]] = []
        if gets:
            members.append(
                select(literal(-1, Integer).label("op"), *_ITEM_COLUMNS).where(
                    tuple_(items.c.namespace, items.c.key).in_(sorted(set(gets))),
                    _alive(now),
                )
            )
        for query in searches:
            members.append(self._search_member(query, now, wrap=bool(gets) or len(searches) > 1))
        statement = members[0] if len(members) == 1 else union_all(*members)
        STATEMENTS.labels("read").inc()
        async with self._read_connection() as conn:
            result = await conn.execute(statement)
            for op, *columns in result.all():
                row = ItemRow(*columns)
                if op < 0:
                    found[(row.namespace, row.key)] = row
                else:
                    pages[op].append(row)
        for rows in pages.values():
            rows.sort(key=lambda r: r.order_key)
        return found, pages

    def _search_member(self, query: SearchQuery, now: ColumnElement[Any], *, wrap: bool) -> Any:
        conditions: list[ColumnElement[bool]] = [_alive(now)]
        if query.prefix is not None:
            lo, hi = ns.descendants_range(query.prefix)
            conditions.append(
                or_(
                    items.c.namespace == query.prefix,
                    and_(items.c.namespace >= lo, items.c.namespace < hi),
                )
            )
        if query.containment is not None and self._postgres:
            conditions.append(_contains(query.containment))
        member = (
            select(literal(query.index, Integer).label("op"), *_ITEM_COLUMNS)
            .where(*conditions)
            .order_by(items.c.updated_at.desc(), items.c.namespace, items.c.key)
        )
        if query.limit is not None:
            member = member.limit(min(query.limit, _MAX_SQL_LIMIT))
        if query.offset:
            member = member.offset(min(query.offset, _MAX_SQL_LIMIT))
        if not wrap:
            return member
        # SQLite allows ORDER BY/LIMIT only on a whole compound: give each member its own.
        inner = member.subquery()
        return select(*inner.c)

    async def list_namespaces(self, listings: Sequence[Listing]) -> list[str]:
        """Texts of namespaces that hold at least one live item, narrowed by ``listings``."""
        if not listings:
            return []
        now = self._now()
        narrowing = []
        for listing in listings:
            depth = spaces.c.depth >= listing.min_depth
            if listing.prefix is None:
                narrowing.append(depth)
                continue
            lo, hi = ns.descendants_range(listing.prefix)
            narrowing.append(
                and_(
                    depth,
                    or_(
                        spaces.c.namespace == listing.prefix,
                        and_(spaces.c.namespace >= lo, spaces.c.namespace < hi),
                    ),
                )
            )
        live = exists().where(items.c.namespace == spaces.c.namespace, _alive(now))
        statement = select(spaces.c.namespace).where(or_(*narrowing), live)
        STATEMENTS.labels("list").inc()
        async with self._read_connection() as conn:
            return list((await conn.execute(statement)).scalars())

    async def load_namespaces(
        self, names: Sequence[str], cap: int, *, replica: bool = False
    ) -> dict[str, NamespaceRows]:
        """Each namespace as the cache stores it (see :class:`NamespaceRows`), in ONE
        statement; from the read replica when ``replica`` and one is configured."""
        if not names:
            return {}
        engine = self._replica if replica and self._replica is not None else self._reader
        STATEMENTS.labels("replica_load" if engine is not self._reader else "load").inc()
        async with self._translated(), engine.connect() as conn:
            return await self._load(conn, names, cap)

    async def _load(
        self, conn: AsyncConnection, names: Sequence[str], cap: int
    ) -> dict[str, NamespaceRows]:
        now = self._now()
        members: list[Any] = []
        for index, name in enumerate(names):
            member = (
                select(
                    literal(index, Integer).label("op"),
                    *_ITEM_COLUMNS,
                    cast(null(), BigInteger).label("version"),
                    cast(null(), BigInteger).label("tree_version"),
                    cast(null(), Boolean).label("below"),
                    now.label("read_at"),
                )
                .where(items.c.namespace == name, _alive(now))
                .order_by(items.c.updated_at.desc(), items.c.namespace, items.c.key)
                .limit(cap + 1)
                .subquery()
            )
            members.append(select(*member.c))
        below = spaces.alias("below")
        has_below = exists().where(
            below.c.namespace >= spaces.c.namespace + ns.SEPARATOR,
            below.c.namespace < spaces.c.namespace + ns.AFTER_SEPARATOR,
        )
        members.append(
            select(
                literal(-1, Integer),
                spaces.c.namespace,
                *(cast(null(), c.type) for c in _ITEM_COLUMNS[1:]),
                spaces.c.version,
                spaces.c.tree_version,
                has_below,
                now,
            ).where(spaces.c.namespace.in_(sorted(set(names))))
        )
        rows: dict[str, list[ItemRow]] = {name: [] for name in names}
        versions: dict[str, tuple[int, bool]] = {}
        read_at = datetime.now(UTC)
        for op, *columns, version, tree, has, at in await conn.execute(union_all(*members)):
            read_at = _utc(at)
            if op < 0:
                versions[columns[0]] = (int(version) + int(tree), bool(has))
            else:
                rows[names[op]].append(ItemRow(*columns))
        loaded = {}
        for name in names:
            found = sorted(rows[name], key=lambda r: r.order_key)
            version, has = versions.get(name, (0, False))
            loaded[name] = NamespaceRows(
                name, version, has, tuple(found[:cap]), len(found) > cap, read_at
            )
        return loaded

    # --- the write path ------------------------------------------------------------

    async def write(
        self, writes: Sequence[ItemWrite], *, read_back: int | None = None
    ) -> WriteOutcome:
        """Apply puts and deletes atomically, bumping namespace versions and owing the
        cache the new ones in the same transaction (the one place that owns it).

        ``read_back``: also read every changed namespace as the cache stores it (up to
        this many items each), for the write-through. A connection lost during COMMIT
        raises :class:`StoreWriteOutcomeUnknown`, which carries what was about to commit.
        """
        if not writes:
            return WriteOutcome()
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            committing: WriteOutcome | None = None
            try:
                async with self._translated(), self._engine.connect() as conn:
                    transaction = await conn.begin()
                    outcome = await self._write(conn, writes, read_back)
                    committing = outcome
                    await transaction.commit()
                    return outcome
            except StoreUnavailable as exc:
                if committing is not None:
                    raise StoreWriteOutcomeUnknown(committing) from exc.__cause__
                if attempt == _WRITE_ATTEMPTS or not _is_retryable(exc.__cause__):
                    raise
                log.info("store write retried after %s (attempt %d)", exc, attempt)
            except StoreError as exc:
                if attempt == _WRITE_ATTEMPTS or not _is_retryable(exc.__cause__):
                    raise
                log.info("store write retried after %s (attempt %d)", exc, attempt)
        raise AssertionError("unreachable")

    async def _write(
        self, conn: AsyncConnection, writes: Sequence[ItemWrite], read_back: int | None
    ) -> WriteOutcome:
        touched = sorted({ns.to_text(w.namespace) for w in writes})
        rows: dict[str, int] = {}
        for w in writes:
            if w.value is not None:
                rows[ns.to_text(w.namespace)] = len(w.namespace)
                for depth, ancestor in enumerate(ns.ancestors(w.namespace)):
                    rows[ancestor] = depth
        created: list[str] = []
        if rows:
            insert = self._insert(spaces).values(
                [{"namespace": text_, "depth": rows[text_]} for text_ in sorted(rows)]
            )
            insert = insert.on_conflict_do_nothing(index_elements=[spaces.c.namespace])
            STATEMENTS.labels("write").inc()
            created = list((await conn.execute(insert.returning(spaces.c.namespace))).scalars())
        grown: set[str] = set()
        for text_ in created:
            grown.add(text_)
            grown.update(ns.ancestors(ns.from_text(text_)))
        bumped = await self._bump(conn, touched, sorted(grown))
        now = bumped.at or datetime.now(UTC)
        puts = [w for w in writes if w.value is not None]
        deletes = [w for w in writes if w.value is None]
        for chunk in _chunks(puts):
            STATEMENTS.labels("write").inc()
            await conn.execute(self._upsert(chunk, now))
        for chunk in _chunks(deletes):
            pairs = [(ns.to_text(w.namespace), w.key) for w in chunk]
            STATEMENTS.labels("write").inc()
            await conn.execute(
                items.delete().where(tuple_(items.c.namespace, items.c.key).in_(pairs))
            )
        loaded: dict[str, NamespaceRows] = {}
        if read_back is not None and bumped.combined:
            STATEMENTS.labels("read_back").inc()
            loaded = await self._load(conn, sorted(bumped.combined), read_back)
        return WriteOutcome(
            bumped.versions,
            bumped.tree_versions,
            tuple(created),
            now,
            bumped.combined,
            loaded,
        )

    async def _bump(
        self, conn: AsyncConnection, touched: list[str], grown: list[str]
    ) -> WriteOutcome:
        """Lock the namespaces (in one order, so writers never deadlock), bump them, and
        owe the cache their new versions (the outbox rows)."""
        targets = sorted(set(touched) | set(grown))
        owed = [name for name in targets if name]  # the root is never cached
        STATEMENTS.labels("write").inc()
        if self._postgres:
            result = await conn.execute(
                _PG_BUMP,
                {
                    "targets": targets,
                    "touched": touched,
                    "grown": grown,
                    "family": NAMESPACE_FAMILY,
                    "names": owed,
                    "digests": [namespace_digest(name) for name in owed],
                },
            )
            return _bumped(result.all(), set(touched), set(grown))
        version = spaces.c.version + case((spaces.c.namespace.in_(touched), 1), else_=0)
        tree: ColumnElement[Any] = spaces.c.tree_version
        if grown:
            tree = tree + case((spaces.c.namespace.in_(grown), 1), else_=0)
        statement = update(spaces).values(version=version, tree_version=tree)
        statement = statement.where(spaces.c.namespace.in_(targets)).returning(
            spaces.c.namespace, spaces.c.version, spaces.c.tree_version, self._now()
        )
        bumped = _bumped((await conn.execute(statement)).all(), set(touched), set(grown))
        if bumped.combined:
            # SQLite (embedded, one process): the outbox rows in a statement of their own.
            STATEMENTS.labels("write").inc()
            await outbox.record_many(
                conn,
                NAMESPACE_FAMILY,
                [(namespace_digest(n), v) for n, v in sorted(bumped.combined.items())],
            )
        return bumped

    def _upsert(self, chunk: Sequence[ItemWrite], now: datetime) -> Any:
        insert = self._insert(items).values(
            [
                {
                    "namespace": ns.to_text(w.namespace),
                    "key": w.key,
                    "value": w.value,
                    "created_at": now,
                    "updated_at": now,
                    "ttl_minutes": w.ttl_minutes,
                    "expires_at": None
                    if w.ttl_minutes is None
                    else now + timedelta(minutes=w.ttl_minutes),
                }
                for w in chunk
            ]
        )
        new = insert.excluded
        # An expired row that the sweeper has not deleted yet is gone to readers: a put on
        # it creates a new item, with a new created_at.
        was_expired = and_(items.c.expires_at.is_not(None), items.c.expires_at <= new.updated_at)
        return insert.on_conflict_do_update(
            index_elements=[items.c.namespace, items.c.key],
            set_={
                "value": new.value,
                "updated_at": new.updated_at,
                "ttl_minutes": new.ttl_minutes,
                "expires_at": new.expires_at,
                "created_at": case((was_expired, new.created_at), else_=items.c.created_at),
            },
        )

    # --- TTL ---------------------------------------------------------------------------

    async def refresh_expiry(
        self, due: Sequence[tuple[str, str, float]], min_interval_seconds: float
    ) -> int:
        """Push the expiry of live TTL items ``(namespace text, key, ttl minutes)`` forward
        to now + TTL, skipping any whose expiry was set less than
        ``min(min_interval_seconds, TTL / 2)`` ago (the coalescing bound). One statement."""
        if not due:
            return 0
        STATEMENTS.labels("ttl_refresh").inc()
        async with self._translated(), self._engine.begin() as conn:
            if self._postgres:
                result = await conn.execute(
                    _PG_REFRESH,
                    {
                        "namespaces": [d[0] for d in due],
                        "keys": [d[1] for d in due],
                        "interval": min_interval_seconds,
                    },
                )
                return int(result.rowcount or 0)
            now = datetime.now(UTC)
            params = []
            for namespace, key, ttl in due:
                life = timedelta(minutes=ttl)
                slack = timedelta(seconds=min(min_interval_seconds, life.total_seconds() / 2))
                params.append(
                    {"ns": namespace, "k": key, "now": now, "new": now + life}
                    | {"due": now + life - slack}
                )
            result = await conn.execute(_sqlite_refresh(), params)
            return int(result.rowcount or 0)

    async def sweep(self, batch_size: int = 1000) -> int:
        """Delete expired items, ``batch_size`` per transaction; returns how many."""
        total = 0
        while True:
            now = self._now()
            doomed = (
                select(items.c.namespace, items.c.key)
                .where(items.c.expires_at.is_not(None), items.c.expires_at <= now)
                .limit(batch_size)
            )
            if self._postgres:
                doomed = doomed.with_for_update(skip_locked=True)
            STATEMENTS.labels("sweep").inc()
            async with self._translated(), self._engine.begin() as conn:
                result = await conn.execute(
                    items.delete().where(tuple_(items.c.namespace, items.c.key).in_(doomed))
                )
            deleted = int(result.rowcount or 0)
            total += deleted
            if deleted < batch_size:
                return total

    # --- plumbing ----------------------------------------------------------------------

    async def probe(self, url: str) -> None:
        """Fail at open, with what to do, if the tables are missing or the DB is down."""
        try:
            async with self._translated(), self._read_connection() as conn:
                await conn.execute(select(spaces.c.namespace).limit(0))
        except StoreError as exc:
            if isinstance(exc.__cause__, ProgrammingError | OperationalError) and (
                "store_namespaces" in str(exc.__cause__)
            ):
                raise StoreNotMigrated(url) from exc.__cause__
            raise

    def _now(self) -> ColumnElement[Any]:
        if self._postgres:
            return func.now()
        return literal(datetime.now(UTC), UTCDateTime)

    def _insert(self, table: Any) -> Any:
        return postgresql.insert(table) if self._postgres else sqlite.insert(table)

    @asynccontextmanager
    async def _read_connection(self) -> AsyncIterator[AsyncConnection]:
        async with self._translated(), self._reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"the store's database is unavailable: {exc}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:  # the connection dropped mid-statement
                raise StoreUnavailable(f"the store's database is unavailable: {exc.orig}") from exc
            raise StoreError(f"the store's database refused the operation: {exc.orig}") from exc


def _bumped(rows: Sequence[Any], touched: set[str], grown: set[str]) -> WriteOutcome:
    """The bump's RETURNING rows as an outcome (``at``: the transaction's timestamp)."""
    versions: dict[str, int] = {}
    trees: dict[str, int] = {}
    combined: dict[str, int] = {}
    at: datetime | None = None
    for name, version, tree_version, now in rows:
        at = _utc(now)
        if name in touched:
            versions[name] = version
        if name in grown:
            trees[name] = tree_version
        if name:
            combined[name] = version + tree_version
    return WriteOutcome(versions, trees, (), at, combined)


def _alive(now: ColumnElement[Any]) -> ColumnElement[bool]:
    return or_(items.c.expires_at.is_(None), items.c.expires_at > now)


def _contains(document: dict[str, Any]) -> ColumnElement[bool]:
    """``value @> document`` as a pre-filter; a value holding a NUL escape cannot be cast
    to jsonb, so it passes the pre-filter and Python decides."""
    safe = func.strpos(items.c.value, NUL_ESCAPE) == 0
    contained = cast(items.c.value, JSONB).contains(bindparam(None, document, type_=JSONB))
    return case((safe, contained), else_=true())


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _chunks(rows: Sequence[ItemWrite]) -> Iterable[Sequence[ItemWrite]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]


def _is_retryable(exc: BaseException | None) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in _RETRYABLE_SQLSTATES


# Lock the namespaces in one order (writers never deadlock), bump their versions, and owe
# the cache each changed namespace's combined version, all in ONE statement (the memory
# contexts' bump does the same). An existing outbox row keeps its enqueue time.
_PG_BUMP = text(
    """
    WITH locked AS (
      SELECT namespace FROM store_namespaces
       WHERE namespace = ANY(CAST(:targets AS text[]))
       ORDER BY namespace
         FOR UPDATE
    ), bumped AS (
      UPDATE store_namespaces AS s
         SET version = s.version
               + CASE WHEN s.namespace = ANY(CAST(:touched AS text[])) THEN 1 ELSE 0 END,
             tree_version = s.tree_version
               + CASE WHEN s.namespace = ANY(CAST(:grown AS text[])) THEN 1 ELSE 0 END
        FROM locked
       WHERE s.namespace = locked.namespace
      RETURNING s.namespace, s.version, s.tree_version
    ), owed AS (
      INSERT INTO cache_outbox (family, entity_id, version, enqueued_at)
      SELECT :family, d.digest, b.version + b.tree_version, now()
        FROM bumped AS b
        JOIN unnest(CAST(:names AS text[]), CAST(:digests AS text[])) AS d(namespace, digest)
          ON d.namespace = b.namespace
      ON CONFLICT (family, entity_id) DO UPDATE
        SET version = GREATEST(cache_outbox.version, EXCLUDED.version)
    )
    SELECT namespace, version, tree_version, now() FROM bumped
    """
).bindparams(
    bindparam("targets", type_=postgresql.ARRAY(Text)),
    bindparam("touched", type_=postgresql.ARRAY(Text)),
    bindparam("grown", type_=postgresql.ARRAY(Text)),
    bindparam("names", type_=postgresql.ARRAY(Text)),
    bindparam("digests", type_=postgresql.ARRAY(Text)),
)

_PG_REFRESH = text(
    """
    UPDATE store_items AS item
       SET expires_at = now() + item.ttl_minutes * interval '1 minute'
      FROM (SELECT s.namespace, s.key
              FROM store_items AS s
              JOIN unnest(CAST(:namespaces AS text[]), CAST(:keys AS text[]))
                   AS wanted(namespace, key)
                ON s.namespace = wanted.namespace AND s.key = wanted.key
             WHERE s.ttl_minutes IS NOT NULL
               AND s.expires_at > now()
               AND s.expires_at <= now() + (s.ttl_minutes * 60
                                            - least(:interval, s.ttl_minutes * 30))
                                           * interval '1 second'
             ORDER BY s.namespace, s.key
               FOR UPDATE OF s SKIP LOCKED) AS due
     WHERE item.namespace = due.namespace AND item.key = due.key
    """
)


def _sqlite_refresh() -> Any:
    return (
        update(items)
        .where(
            items.c.namespace == bindparam("ns"),
            items.c.key == bindparam("k"),
            items.c.ttl_minutes.is_not(None),
            items.c.expires_at > bindparam("now", type_=UTCDateTime),
            items.c.expires_at <= bindparam("due", type_=UTCDateTime),
        )
        .values(expires_at=bindparam("new", type_=UTCDateTime))
    )
