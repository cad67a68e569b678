"""`memlayer bench store`: warm store reads through memlayer's store and through the peer.

Same data, same run: ``--namespaces`` namespaces of ``--items`` items each are put into
memlayer's store (Postgres + Redis) and into LangGraph's ``AsyncPostgresStore`` (the
peer, on the same Postgres, with a connection pool as large as ours), then warm ``aget``
and ``asearch(namespace, limit=5)`` are measured through memlayer's store on each of its
tiers — the near-cache (served from process memory, kept coherent by Redis client
tracking; a handle opened as usual) and the Redis tier (one round trip; a handle opened
with ``near_cache_enabled=False``) — through the peer with its defaults (a TTL refresh on
every read) and with ``refresh_ttl=False``, and as a bare Redis GET plus msgpack decode of
the very bytes memlayer caches for the namespace (the limit of a round trip). With
``MEMLAYER_NEAR_CACHE_ENABLED=false`` (or where the near-cache cannot run: a cluster) the
near rows are left out and the report says why. The operations are measured in
interleaved slices (as ``memlayer bench`` does), so every ratio compares the same moments
of a noisy machine.

Postgres statements are counted where they are sent, per system and per operation:
memlayer's by its engine's statement events, the peer's by its cursors. A statement that
inserts, updates or deletes is a write, whatever else it does (the peer's get is one
statement with an ``UPDATE`` in a CTE, refresh or not). The cache tier's own background
statements (outbox drain rounds, acknowledgements, backlog counts, the generation floor)
are counted apart: they are per-process costs, not caused by reads. Several runs report
each number's median. It cleans up the data and the keys it made.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgpack
from langgraph.store.base import BaseStore, PutOp
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from memlayer.bench_harness import Measure, drive, ensure_bench_database
from memlayer.cache.codec import HEADER_LEN
from memlayer.cache.invalidation import NearAvailability, near_availability
from memlayer.cache.keys import namespace_digest, namespace_key, scan_pattern
from memlayer.metrics import current
from memlayer.settings import Settings
from memlayer.store import MemlayerStore, open_store
from memlayer.store import metrics as store_metrics

_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_BACKGROUND = re.compile(r"\b(cache_outbox|cache_generations)\b")
_SEED_BATCH = 500
_SLICES = 4
_LINK_WAIT_S = 10.0

NEAR_GET = "memlayer aget (near-cache)"
NEAR_SEARCH = "memlayer asearch (near-cache)"
MEMLAYER_GET = "memlayer aget"
MEMLAYER_SEARCH = "memlayer asearch(limit=5)"
PEER_GET = "peer aget (defaults)"
PEER_GET_NO_REFRESH = "peer aget refresh_ttl=False"
PEER_SEARCH = "peer asearch(limit=5) (defaults)"
PEER_SEARCH_NO_REFRESH = "peer asearch refresh_ttl=False"
BARE = "bare Redis GET + msgpack decode"


@dataclass
class Tally:
    """Postgres statements per operation (the operation running now gets them)."""

    current: str = ""
    reads: dict[str, int] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)
    background: int = 0

    def note(self, statement: str) -> None:
        if _BACKGROUND.search(statement):
            self.background += 1
            return
        bucket = self.writes if _WRITE.search(statement) else self.reads
        bucket[self.current] = bucket.get(self.current, 0) + 1

    def per_1000(self, name: str, calls: int, *, writes: bool = False) -> float:
        bucket = self.writes if writes else self.reads
        total = bucket.get(name, 0) + (0 if writes else self.writes.get(name, 0))
        return total * 1000 / calls if calls else 0.0


TALLY = Tally()


def _counting_cursor() -> type:
    """A psycopg cursor that tells :data:`TALLY` of every statement the peer sends."""
    import psycopg

    class CountingCursor(psycopg.AsyncCursor[Any]):
        async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            TALLY.note(query if isinstance(query, str) else query.as_string(self))
            return await super().execute(query, params, **kwargs)

        async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
            rows = list(params_seq)
            for _ in rows:
                TALLY.note(query if isinstance(query, str) else query.as_string(self))
            await super().executemany(query, rows, **kwargs)

    return CountingCursor


@dataclass(frozen=True)
class RunResult:
    measures: dict[str, Measure]
    per_1000: dict[str, float]  # Postgres statements per 1,000 reads
    writes_per_1000: dict[str, float]  # of which writes
    background: int  # the cache tier's own statements during the run
    near_share: float | None  # of the near rows' namespace lookups, those served from memory


async def run_bench_store(
    settings: Settings,
    *,
    namespaces: int,
    items: int,
    concurrency: int,
    reads: int,
    runs: int,
) -> int:
    settings = await ensure_bench_database(settings)
    run_id = uuid.uuid4().hex[:8]
    prefix = f"{settings.cache_key_prefix}-store-{run_id}"
    settings = settings.model_copy(update={"cache_key_prefix": prefix})
    if settings.redis_url is None:
        print("memlayer bench store needs Redis: set MEMLAYER_REDIS_URL", file=sys.stderr)
        return 2
    from langgraph.store.postgres import AsyncPostgresStore

    root = ("bench-store", run_id)
    spaces: list[tuple[str, ...]] = [
        (*root, "users", str(n), "memories") for n in range(namespaces)
    ]
    pool = settings.database_pool_size
    dsn = make_url(str(settings.database_url)).set(drivername="postgresql")
    print(
        f"memlayer bench store: {settings.database_url} + {settings.redis_url} "
        f"(keys {prefix}:*; the peer on the same database, a pool of {pool})"
    )
    availability = near_availability(settings)
    if availability is not NearAvailability.AVAILABLE:
        print(f"  near-cache rows left out: the near-cache is {availability.value} here")
    async with AsyncExitStack() as stack:
        # The Redis tier alone: a handle whose near-cache never serves (no link).
        store = await stack.enter_async_context(
            open_store(settings.model_copy(update={"near_cache_enabled": False}))
        )
        near = None
        if availability is NearAvailability.AVAILABLE:
            near = await stack.enter_async_context(open_store(settings))
        peer = await stack.enter_async_context(
            AsyncPostgresStore.from_conn_string(
                dsn.render_as_string(hide_password=False),
                pool_config={
                    "min_size": pool,
                    "max_size": pool,
                    "kwargs": {"cursor_factory": _counting_cursor()},
                },
            )
        )
        await peer.setup()
        engines = [s.repository.engine for s in (store, near) if s is not None]
        for engine in engines:
            event.listen(engine.sync_engine, "before_cursor_execute", _on_sql)
        try:
            await _seed(store, peer, spaces, items)
            results = [
                await _one_run(store, near, peer, settings, spaces, items, concurrency, reads, n)
                for n in range(1, runs + 1)
            ]
        finally:
            for engine in engines:
                _stop_counting(engine)
            await _clean_up(store, peer, settings, root)
    _print_table(results, concurrency, reads, namespaces, items)
    return 0


def _stop_counting(engine: AsyncEngine) -> None:
    event.remove(engine.sync_engine, "before_cursor_execute", _on_sql)


def _on_sql(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
    TALLY.note(statement)


def _value(namespace: int, item: int) -> dict[str, Any]:
    return {
        "text": f"user {namespace} said something memorable, number {item}",
        "kind": "note" if item % 3 else "preference",
        "i": item,
    }


async def _seed(
    store: MemlayerStore, peer: BaseStore, spaces: list[tuple[str, ...]], items: int
) -> None:
    ops = [
        PutOp(space, f"k{i}", _value(n, i)) for n, space in enumerate(spaces) for i in range(items)
    ]
    sys.stderr.write(f"  seeding {len(ops):,} items into both stores…")
    TALLY.current = "seed"
    for start in range(0, len(ops), _SEED_BATCH):
        chunk = ops[start : start + _SEED_BATCH]
        await store.abatch(chunk)
        await peer.abatch(chunk)
    sys.stderr.write(" done\n")


async def _one_run(
    store: MemlayerStore,
    near: MemlayerStore | None,
    peer: BaseStore,
    settings: Settings,
    spaces: list[tuple[str, ...]],
    items: int,
    concurrency: int,
    reads: int,
    n: int,
) -> RunResult:
    cache = store.cache
    assert cache is not None
    client = cache.store.client
    keys = [f"k{i}" for i in range(items)]
    sys.stderr.write(f"run {n}: warming {len(spaces):,} namespaces…")
    TALLY.current = "warm"
    for space in spaces:  # steady state: every namespace read once through each store
        await store.aget(space, keys[0])
        await store.asearch(space, limit=5)
        await peer.aget(space, keys[0], refresh_ttl=False)
    if near is not None:
        await _warm_near(near, spaces, keys[0])
    generation = cache.generation or 0
    names = [
        namespace_key(settings.cache_key_prefix, namespace_digest(".".join(s)), generation)
        for s in spaces
    ]
    rng = random.Random(n)
    picks = [(rng.randrange(len(spaces)), rng.choice(keys)) for _ in range(reads)]
    unpackb = msgpack.unpackb

    async def bare(i: int) -> None:
        raw: bytes | None = await client.get(names[picks[i][0]])  # type: ignore[assignment]
        if raw is not None:
            unpackb(memoryview(raw)[HEADER_LEN:], raw=False, timestamp=3)

    ops: dict[str, Callable[[int], Awaitable[object]]] = {}
    if near is not None:
        ops[NEAR_GET] = lambda i: near.aget(spaces[picks[i][0]], picks[i][1])
        ops[NEAR_SEARCH] = lambda i: near.asearch(spaces[picks[i][0]], limit=5)
    ops |= {
        MEMLAYER_GET: lambda i: store.aget(spaces[picks[i][0]], picks[i][1]),
        MEMLAYER_SEARCH: lambda i: store.asearch(spaces[picks[i][0]], limit=5),
        PEER_GET: lambda i: peer.aget(spaces[picks[i][0]], picks[i][1]),
        PEER_GET_NO_REFRESH: lambda i: peer.aget(
            spaces[picks[i][0]], picks[i][1], refresh_ttl=False
        ),
        PEER_SEARCH: lambda i: peer.asearch(spaces[picks[i][0]], limit=5),
        PEER_SEARCH_NO_REFRESH: lambda i: peer.asearch(
            spaces[picks[i][0]], limit=5, refresh_ttl=False
        ),
        BARE: bare,
    }
    before_reads, before_writes = dict(TALLY.reads), dict(TALLY.writes)
    before_background = TALLY.background
    sys.stderr.write(f" measuring {len(ops)} operations × {_SLICES} slices…")
    near_lookups = _NearLookups()
    measures = await drive(
        {name: _tallied(name, op) for name, op in ops.items()},
        reads,
        concurrency,
        list(range(reads)),
        slices=_SLICES,
        around_slice=near_lookups.slice,
    )
    sys.stderr.write(" done\n")
    counted: dict[str, float] = {}
    written: dict[str, float] = {}
    for name, measure in measures.items():
        statements = TALLY.reads.get(name, 0) - before_reads.get(name, 0)
        writes = TALLY.writes.get(name, 0) - before_writes.get(name, 0)
        counted[name] = (statements + writes) * 1000 / measure.calls
        written[name] = writes * 1000 / measure.calls
    return RunResult(
        measures,
        counted,
        written,
        TALLY.background - before_background,
        near_lookups.share() if near is not None else None,
    )


async def _warm_near(near: MemlayerStore, spaces: list[tuple[str, ...]], key: str) -> None:
    """Every namespace read once through the near-cache handle, once its link is up and
    every invalidation of the seeding and warming has arrived (one arriving while a read
    is out keeps that read's value from being served from memory)."""
    cache = near.cache
    assert cache is not None
    link = cache.near_link
    assert link is not None  # started by open_store where the near-cache is available
    await asyncio.wait_for(link.wait_established(), _LINK_WAIT_S)
    await near.aget(spaces[0], key)  # the generation: its epoch record's news comes first
    await link.barrier()
    for space in spaces:
        await near.aget(space, key)
    await link.barrier()


class _NearLookups:
    """The namespace lookups made while the near rows' slices run (only the near handle
    reads then), and how many of them the near-cache answered. Read per slice, outside
    the timing: concurrent reads of one namespace coalesced into one batch are one lookup."""

    def __init__(self) -> None:
        self.near = 0.0
        self.total = 0.0

    @contextmanager
    def slice(self, name: str) -> Iterator[None]:
        if name not in (NEAR_GET, NEAR_SEARCH):
            yield
            return
        near, total = current(store_metrics.LOOKUP_NEAR), _lookups()
        yield
        self.near += current(store_metrics.LOOKUP_NEAR) - near
        self.total += _lookups() - total

    def share(self) -> float:
        return self.near / self.total if self.total else 0.0


def _lookups() -> float:
    return sum(
        current(counter)
        for counter in (
            store_metrics.LOOKUP_NEAR,
            store_metrics.LOOKUP_HIT,
            store_metrics.LOOKUP_MISS,
            store_metrics.LOOKUP_BYPASS,
        )
    )


def _tallied(
    name: str, op: Callable[[int], Awaitable[object]]
) -> Callable[[int], Awaitable[object]]:
    """The op, telling the tally it is the one running (one op per slice runs at a time)."""

    async def run(i: int) -> object:
        TALLY.current = name
        return await op(i)

    return run


async def _clean_up(
    store: MemlayerStore, peer: Any, settings: Settings, root: tuple[str, ...]
) -> None:
    """Remove the run's rows from both stores and its keys from Redis."""
    text_root = ".".join(root)
    async with store.repository.engine.begin() as conn:
        # Bench data only: production never deletes namespace rows (versions never restart).
        for table in ("store_items", "store_namespaces"):
            await conn.execute(
                text(f"DELETE FROM {table} WHERE namespace >= :lo AND namespace < :hi"),
                {"lo": text_root, "hi": text_root + "/"},
            )
    async with peer._cursor() as cur:  # the peer's own connection helper
        await cur.execute("DELETE FROM store WHERE prefix LIKE %s", (text_root + ".%",))
    cache = store.cache
    if cache is not None:
        client = cache.store.client
        stale = [
            key async for key in client.scan_iter(match=scan_pattern(settings.cache_key_prefix))
        ]
        for offset in range(0, len(stale), 1000):
            await client.delete(*stale[offset : offset + 1000])


def _print_table(
    results: list[RunResult], concurrency: int, reads: int, namespaces: int, items: int
) -> None:
    med = statistics.median
    names = list(results[0].measures)

    def rate(name: str) -> float:
        return med(r.measures[name].per_second for r in results)

    print()
    print(
        f"  memlayer bench store — median of {len(results)} run(s), concurrency {concurrency}, "
        f"{reads:,} reads per operation per run, {namespaces:,} namespaces × {items} items"
    )
    rule = "  " + "─" * 96
    print(rule)
    print(
        f"  {'':<36} {'reads/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'PG stmts/1k':>12} {'PG writes/1k':>13}"
    )
    for name in names:
        print(
            f"  {name:<36} {rate(name):>10,.0f} "
            f"{med(r.measures[name].p50_ms for r in results):>8.3f} "
            f"{med(r.measures[name].p99_ms for r in results):>8.3f} "
            f"{med(r.per_1000[name] for r in results):>12.2f} "
            f"{med(r.writes_per_1000[name] for r in results):>13.2f}"
        )
    print(rule)
    near = NEAR_GET in names
    ratios = [
        (MEMLAYER_GET, PEER_GET, "≥ 5"),
        (MEMLAYER_GET, PEER_GET_NO_REFRESH, "≥ 5"),
        (MEMLAYER_SEARCH, PEER_SEARCH, "≥ 5"),
        (MEMLAYER_SEARCH, PEER_SEARCH_NO_REFRESH, "≥ 5"),
        (MEMLAYER_GET, BARE, "limit"),
        (MEMLAYER_SEARCH, BARE, "limit"),
    ]
    if near:
        ratios += [
            (NEAR_GET, BARE, "no round trip"),
            (NEAR_SEARCH, BARE, "no round trip"),
            (NEAR_GET, MEMLAYER_GET, "near / Redis tier"),
            (NEAR_SEARCH, MEMLAYER_SEARCH, "near / Redis tier"),
            (NEAR_GET, PEER_GET, "vs the peer"),
            (NEAR_SEARCH, PEER_SEARCH, "vs the peer"),
        ]
    for mine, theirs, target in ratios:
        label = f"{mine} / {theirs}"
        print(f"  {label:<72} {rate(mine) / rate(theirs):>7.2f}  ({target})")
    ours = (MEMLAYER_GET, MEMLAYER_SEARCH) + ((NEAR_GET, NEAR_SEARCH) if near else ())
    memlayer_reads = max(med(r.per_1000[name] for r in results) for name in ours)
    memlayer_writes = max(med(r.writes_per_1000[name] for r in results) for name in ours)
    if near:
        share = med(r.near_share or 0.0 for r in results)
        print(f"  near rows' namespace lookups answered from process memory    {share:>7.1%}")
    print(f"  memlayer Postgres statements / 1,000 warm reads (target ≤ 1)   {memlayer_reads:.2f}")
    print(f"  memlayer Postgres writes / 1,000 warm reads (target 0)         {memlayer_writes:.2f}")
    print(
        "  cache tier's background statements per run (outbox drain, acks; not reads)  "
        f"{med(r.background for r in results):.0f}"
    )
