"""`memlayer bench`: the hot path measured against its own limits.

On real Postgres and Redis with a seeded data set, one run prints latency and throughput
at a fixed concurrency for (n) near-cache-warm ``load_context`` (served from process
memory, kept coherent by Redis client tracking), (a) Redis-warm ``load_context`` (the near
cache not serving: one GET per load), (b) the same service with the cache disabled, (c) the
limit of a round trip: a bare redis-py GET plus msgpack decode of the same bytes; then the
ratios n/c, a/c and a/b, Postgres queries per 1,000 warm loads, what a cold-key stampede
costs, and the invalidation lag of the near-cache's link (write to arrival, same process;
``memlayer bench-invalidation`` measures it across processes). Several runs report each
number's median.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import uuid
from dataclasses import dataclass

import msgpack
from sqlalchemy import select

from memlayer.bench_harness import Measure, drive, ensure_bench_database
from memlayer.cache import ContextCache, NullContextCache, RedisClient, make_redis_client
from memlayer.cache.codec import HEADER_LEN
from memlayer.cache.invalidation import InvalidationLink
from memlayer.cache.keys import context_key, scan_pattern
from memlayer.cache.lag_probe import LagObserver, LagProbeWriter
from memlayer.memory.db import Database
from memlayer.memory.metrics import DB_QUERIES
from memlayer.memory.models import User
from memlayer.memory.service import LongTermMemoryService
from memlayer.metrics import current
from memlayer.seed import print_summary, seed
from memlayer.settings import Settings

BENCH_EMAIL_PREFIX = "bench"
LAG_PROBES = 200
LAG_PROBE_PAUSE_S = 0.002
LINK_WAIT_S = 10.0


def _db_queries() -> float:
    return current(DB_QUERIES)


async def _bench_user_ids(
    database: Database, users: int, memories: int, settings: Settings
) -> list[int]:
    async with database.sessionmaker() as db:
        ids = list(
            (
                await db.scalars(
                    select(User.id)
                    .where(User.email.like(f"{BENCH_EMAIL_PREFIX}-%"))
                    .order_by(User.id)
                    .limit(users)
                )
            ).all()
        )
    if len(ids) < users:
        print(f"  seeding {users - len(ids):,} bench users × {memories} memories (once)")
        result = await seed(
            settings,
            users=users - len(ids),
            memories=memories,
            credentials=None,
            email_prefix=f"{BENCH_EMAIL_PREFIX}-{len(ids)}",
        )
        print_summary(result)
        return await _bench_user_ids(database, users, memories, settings)
    return ids


async def run_bench(
    settings: Settings,
    *,
    users: int,
    memories: int,
    concurrency: int,
    loads: int,
    runs: int,
    stampede: int,
) -> int:
    settings = await ensure_bench_database(settings)
    # Keys of their own: values left by an earlier bench would reach their TTL mid-run
    # and show up as misses that have nothing to do with the code being measured.
    prefix = f"{settings.cache_key_prefix}-run-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"cache_key_prefix": prefix})
    print(f"memlayer bench: {settings.database_url} + {settings.redis_url} (keys {prefix}:*)")
    database = Database.from_settings(settings)
    redis = make_redis_client(settings)
    try:
        ids = await _bench_user_ids(database, users, memories, settings)
        results = [
            await _one_run(database, redis, settings, ids, concurrency, loads, stampede, n)
            for n in range(1, runs + 1)
        ]
    finally:
        stale = [key async for key in redis.scan_iter(match=scan_pattern(prefix), count=1000)]
        for offset in range(0, len(stale), 1000):
            await redis.delete(*stale[offset : offset + 1000])
        await redis.aclose()
        await database.aclose()
    _print_table(results, concurrency, loads)
    return 0


@dataclass(frozen=True)
class RunResult:
    n: Measure  # near-cache-warm load_context
    a: Measure  # warm load_context
    a_decoding: Measure  # the same, decoding every hit
    b: Measure  # cache disabled
    c: Measure  # bare GET + msgpack
    queries_per_1000: float  # Postgres queries per 1,000 warm loads
    stampede_queries: float  # Postgres queries for one cold-key stampede
    stampede: int  # loads in that stampede
    lag_ms: list[float]  # invalidation lag samples (write to arrival on the link)


async def _one_run(
    database: Database,
    redis: RedisClient,
    settings: Settings,
    ids: list[int],
    concurrency: int,
    loads: int,
    stampede: int,
    n: int,
) -> RunResult:
    cache = ContextCache(redis, settings)
    service = LongTermMemoryService(database, settings, cache)
    # The same tier decoding every hit: what a load costs when its bytes are new to the process.
    undecoded = ContextCache(redis, settings.model_copy(update={"near_cache_max_entries": 0}))
    service_undecoded = LongTermMemoryService(database, settings, undecoded)
    uncached = LongTermMemoryService(database, settings, NullContextCache())
    # The near-cache serving: its invalidation link attached and established, as in a
    # serving process (whose lifespan does this through cache.near_tier).
    near = ContextCache(redis, settings)
    service_near = LongTermMemoryService(database, settings, near)
    lag_ms: list[float] = []
    assert settings.redis_url is not None
    link = InvalidationLink.for_url(
        settings.redis_url,
        settings.cache_key_prefix,
        settings,
        probes=LagObserver(
            settings.near_cache_lag_probe_lifetime_ms, record=lambda s: lag_ms.append(s * 1000)
        ),
    )
    near.attach_link(link)
    link.start()
    await asyncio.wait_for(link.wait_established(), LINK_WAIT_S)
    # The warm set: as many users as the run will touch, loaded once into Redis.
    warm_ids = ids[: min(len(ids), max(1000, loads // 4))]
    stampede_user = ids[-1 - n]
    sys.stderr.write(f"run {n}: warming {len(warm_ids):,} users…")
    await service.warm_cache(warm_ids)
    # Warm means steady state: every user read once through this process (connections
    # open, decoded contexts remembered), as a serving process is after its first minute.
    for uid in warm_ids:
        await service.load_context(uid)
        await service_undecoded.load_context(uid)
    await near.check_epoch()
    await link.barrier()  # every invalidation of the warm-up has arrived
    for uid in warm_ids:
        await service_near.load_context(uid)  # read from Redis under a fill ticket
    generation = cache.generation or 0
    prefix = settings.cache_key_prefix
    keys = {uid: context_key(prefix, uid, generation) for uid in warm_ids}
    unpackb = msgpack.unpackb

    async def bare(uid: int) -> None:
        raw = await redis.get(keys[uid])
        if raw is not None:  # a key may reach its TTL during a run
            unpackb(raw[HEADER_LEN:], raw=False, strict_map_key=True, timestamp=3)

    sys.stderr.write(" (n) (a) (a') (c)…")
    before = _db_queries()
    hot = await drive(
        {
            "(n) near-cache load_context": service_near.load_context,
            "(a) Redis-warm load_context": service.load_context,
            "(a') same, decoding each hit": service_undecoded.load_context,
            "(c) bare GET + msgpack": bare,
        },
        loads,
        concurrency,
        warm_ids,
    )
    warm_queries = _db_queries() - before
    near_warm, warm, warm_decoding, limit = hot.values()
    sys.stderr.write(" lag…")
    lag_ms.clear()  # only probes written from here on
    probes = LagProbeWriter(
        redis,
        settings.cache_key_prefix,
        interval_s=1.0,
        lifetime_ms=settings.near_cache_lag_probe_lifetime_ms,
    )
    for _ in range(LAG_PROBES):
        await probes.write_once()
        await asyncio.sleep(LAG_PROBE_PAUSE_S)
    await link.barrier()
    await link.aclose()
    sys.stderr.write(" (b)…")
    [db_only] = (
        await drive(
            {"(b) cache disabled": uncached.load_context},
            max(loads // 5, 500),
            concurrency,
            warm_ids,
            slices=1,
        )
    ).values()
    sys.stderr.write(" stampede…")
    await cache.invalidate(stampede_user)  # a marker: the next load misses
    before = _db_queries()
    await asyncio.gather(*(service.load_context(stampede_user) for _ in range(stampede)))
    stampede_queries = _db_queries() - before
    await cache.aclose()
    await undecoded.aclose()
    await near.aclose()
    sys.stderr.write(" done\n")
    return RunResult(
        n=near_warm,
        a=warm,
        a_decoding=warm_decoding,
        b=db_only,
        c=limit,
        # (n) and (a') read the same users and are counted too: all must stay off Postgres.
        queries_per_1000=warm_queries * 1000 / (3 * loads),
        stampede_queries=stampede_queries,
        stampede=stampede,
        lag_ms=list(lag_ms),
    )


def _print_table(results: list[RunResult], concurrency: int, loads: int) -> None:
    med = statistics.median

    def row(ms: list[Measure]) -> str:
        return (
            f"  {ms[0].name:<30} {med(m.per_second for m in ms):>12,.0f} "
            f"{med(m.p50_ms for m in ms):>9.3f} {med(m.p99_ms for m in ms):>9.3f}"
        )

    n = med(r.n.per_second for r in results)
    a = med(r.a.per_second for r in results)
    b = med(r.b.per_second for r in results)
    c = med(r.c.per_second for r in results)
    print()
    print(
        f"  memlayer bench — median of {len(results)} run(s), concurrency {concurrency}, "
        f"{loads:,} loads per run"
    )
    print("  ─────────────────────────────────────────────────────────────────────")
    print(f"  {'':<30} {'loads/s':>12} {'p50 ms':>9} {'p99 ms':>9}")
    for column in (
        [r.n for r in results],
        [r.a for r in results],
        [r.a_decoding for r in results],
        [r.c for r in results],
        [r.b for r in results],
    ):
        print(row(column))
    print("  ─────────────────────────────────────────────────────────────────────")
    a_decoding = med(r.a_decoding.per_second for r in results)
    print(f"  n/c (near-cache, target ≥ 5) {n / c:>8.2f}")
    print(f"  a/c (target ≥ 0.80)          {a / c:>8.2f}")
    print(f"  a'/c (no decoded memo)       {a_decoding / c:>8.2f}")
    print(f"  a/b (cache speed-up)         {a / b:>8.2f}")
    print(
        f"  Postgres queries / 1,000 warm loads (target ≤ 1)  "
        f"{med(r.queries_per_1000 for r in results):.2f}"
    )
    print(
        f"  Postgres queries for a {results[0].stampede}-load cold-key stampede (target 1)  "
        f"{med(r.stampede_queries for r in results):.0f}"
    )
    lags = sorted(x for r in results for x in r.lag_ms)
    if lags:
        p50 = lags[len(lags) // 2]
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(
            f"  invalidation lag, write to arrival (target p99 < 10 ms)  p50 {p50:.2f} ms  "
            f"p99 {p99:.2f} ms  ({len(lags)} probes, same process; across processes: "
            "memlayer bench-invalidation)"
        )
    else:
        print("  invalidation lag: no probe arrived (is the link established?)")
