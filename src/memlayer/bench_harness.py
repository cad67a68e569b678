"""What the ``memlayer bench`` commands share: the bench database, and a driver that
measures several operations in interleaved slices at a fixed concurrency.

A module of its own so each bench (``bench``, ``bench store``) imports a public seam rather
than another bench's private helpers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

from memlayer.settings import Settings

BENCH_DATABASE = "memlayer_bench"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"  # the benches' defaults when nothing is set
LOCAL_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"

Op = Callable[[int], Awaitable[object]]


@dataclass(frozen=True)
class Measure:
    name: str
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds


async def drive_once(concurrency: int, plan: list[int], op: Op) -> tuple[float, list[float]]:
    """Run the planned operations from ``concurrency`` workers; (elapsed, latencies)."""
    latencies: list[float] = []
    cursor = iter(plan)

    async def worker() -> None:
        clock = time.perf_counter
        record = latencies.append
        for uid in cursor:
            start = clock()
            await op(uid)
            record(clock() - start)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def drive(
    ops: dict[str, Op],
    calls: int,
    concurrency: int,
    user_ids: list[int],
    slices: int = 4,
    around_slice: Callable[[str], AbstractContextManager[object]] | None = None,
) -> dict[str, Measure]:
    """Measure several operations over the same plan, interleaved in ``slices``.

    Alternating slices puts every operation under the same machine conditions (other
    processes, CPU frequency), so a ratio between them is not a ratio of two moments.
    ``around_slice(name)``: entered around each slice of that operation (outside the
    timing), e.g. to read counters only that operation moves while its slice runs.
    """
    rng = random.Random(7)
    plan = [rng.choice(user_ids) for _ in range(calls)]
    step = max(1, calls // slices)
    elapsed = dict.fromkeys(ops, 0.0)
    latencies: dict[str, list[float]] = {name: [] for name in ops}
    for offset in range(0, calls, step):
        for name, op in ops.items():
            with around_slice(name) if around_slice is not None else nullcontext():
                took, seen = await drive_once(concurrency, plan[offset : offset + step], op)
            elapsed[name] += took
            latencies[name].extend(seen)
    measures = {}
    for name in ops:
        ordered = sorted(latencies[name])
        measures[name] = Measure(
            name,
            len(ordered),
            elapsed[name],
            ordered[len(ordered) // 2] * 1000,
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        )
    return measures


async def ensure_bench_database(settings: Settings) -> Settings:
    """Default to a local ``memlayer_bench`` database, created on first use."""
    if settings.database_url:
        return settings
    url = make_url(LOCAL_POSTGRES_URL)
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", BENCH_DATABASE
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    finally:
        await admin.close()
    bench_url = url.set(database=BENCH_DATABASE).render_as_string(hide_password=False)
    from alembic import command

    from memlayer.migrations import alembic_config

    await asyncio.to_thread(command.upgrade, alembic_config(bench_url), "head")
    return settings.model_copy(
        update={
            "database_url": bench_url,
            "redis_url": settings.redis_url or LOCAL_REDIS_URL,
            "cache_key_prefix": "memlayer-bench",  # made unique per run below
        }
    )
