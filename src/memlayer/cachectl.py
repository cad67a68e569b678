"""`memlayer cache stats|invalidate|warm|verify`: the on-call person's cache commands."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select

from memlayer.cache import ContextCache, RequestCounts, make_redis_client
from memlayer.memory import consistency
from memlayer.memory.coherence import context_cache
from memlayer.memory.db import Database
from memlayer.memory.models import ConversationMemory
from memlayer.memory.service import LongTermMemoryService
from memlayer.settings import Settings


@asynccontextmanager
async def _opened(
    settings: Settings,
) -> AsyncIterator[tuple[Database, ContextCache, LongTermMemoryService]]:
    database = Database.from_settings(settings)
    redis = make_redis_client(settings)
    cache = context_cache(redis, database, settings)
    try:
        yield database, cache, LongTermMemoryService(database, settings, cache)
    finally:
        await cache.aclose()
        await redis.aclose()
        await database.aclose()


def _fmt_bytes(value: int | None) -> str:
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _served_summary(url: str) -> dict[str, Any] | None:
    """The serving service's numbers (every worker's), if one answers at ``url``."""
    try:
        with urllib.request.urlopen(f"{url}/api/v1/ops/summary", timeout=2) as response:
            summary = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _served_requests(summary: dict[str, Any]) -> RequestCounts:
    """The server's lookups by result (this CLI's own process has served none)."""
    return RequestCounts.from_results(summary.get("cache_requests") or {})


def _fmt_ratio(requests: RequestCounts) -> str:
    ratio = requests.hit_ratio
    if ratio is None:
        return "n/a (no lookups yet)"
    served = requests.near + requests.hits
    return f"{ratio:.2%}  ({served:,.0f} of {requests.lookups:,.0f} lookups)"


def _fmt_shares(requests: RequestCounts) -> str:
    shares = requests.tier_shares
    if shares is None:
        return "n/a"
    return f"near {shares.near:.1%} · Redis {shares.redis:.1%} · Postgres {shares.postgres:.1%}"


def _fmt_seconds(value: object) -> str:
    return "n/a" if not isinstance(value, int | float) else f"≤ {value * 1000:.2f} ms"


def _near_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The serving service's near-cache, summed over its workers."""
    near = summary.get("near_cache")
    if not isinstance(near, dict):
        return [("near-cache", "n/a (the server reports none)")]
    workers = summary.get("workers", 1)
    lag = near.get("invalidation_lag_seconds") or {}
    rechecks = near.get("rechecks") or {}
    flagged = float(rechecks.get("mismatch", 0)) + float(rechecks.get("missing", 0))
    return [
        ("near-cache links", f"{near.get('links_up', 0):,.0f} of {workers} workers"),
        (
            "near-cache size",
            f"{near.get('entries', 0):,.0f} entries, {_fmt_bytes(int(near.get('bytes', 0)))}",
        ),
        (
            "invalidation lag",
            f"p50 {_fmt_seconds(lag.get('p50'))}, p99 {_fmt_seconds(lag.get('p99'))}",
        ),
        (
            "near re-checks",
            f"{sum(rechecks.values()):,.0f} ({flagged:,.0f} found Redis disagreeing)",
        ),
    ]


def _fmt_breaker(summary: dict[str, Any]) -> str:
    """Closed, or open on how many of the service's workers."""
    if not summary.get("breaker_open"):
        return "closed"
    workers = summary.get("workers")
    opened = summary.get("workers_breaker_open")
    return "OPEN" if workers is None else f"OPEN on {opened} of {workers} workers"


async def stats(settings: Settings, server_url: str) -> int:
    async with _opened(settings) as (_db, cache, _service):
        reachable = await cache.ping()
        s = await cache.stats()
    served = _served_summary(server_url)
    rows = [
        ("redis", f"{'up' if reachable else 'DOWN'}  ({settings.redis_url or 'embedded'})"),
        ("key prefix", settings.cache_key_prefix),
        ("generation", "n/a" if s.generation is None else str(s.generation)),
        ("keys", "n/a" if s.keys is None else f"{s.keys:,}"),
        ("memory used", _fmt_bytes(s.bytes_used)),
    ]
    if served is None:
        rows.append(("hit ratio", f"n/a (no memlayer server answers at {server_url})"))
        rows.append(("breaker (this CLI)", s.breaker_state))
    else:
        requests = _served_requests(served)
        rows.append(("hit ratio", f"{_fmt_ratio(requests)}  {server_url}"))
        rows.append(("served by tier", _fmt_shares(requests)))
        rows.append(("workers (server)", str(served.get("workers", "n/a"))))
        rows.append(("breaker (server)", _fmt_breaker(served)))
        rows.extend(_near_rows(served))
    print("  memlayer cache stats")
    print("  " + "─" * 40)
    for name, value in rows:
        print(f"  {name:<20}{value}")
    return 0 if reachable else 1


async def invalidate(settings: Settings, user_id: int) -> int:
    async with _opened(settings) as (_db, cache, _service):
        if not await cache.ping():
            print(f"error: Redis at {settings.redis_url} does not answer; nothing invalidated")
            return 1
        await cache.invalidate(user_id)
    print(f"invalidated the cached context of user {user_id}; the next load refills it")
    return 0


async def warm(settings: Settings, top: int) -> int:
    """Load the ``top`` users with the most recent memory activity into the cache."""
    async with _opened(settings) as (database, _cache, service):
        async with database.sessionmaker() as db:
            user_ids = list(
                (
                    await db.scalars(
                        select(ConversationMemory.user_id)
                        .group_by(ConversationMemory.user_id)
                        .order_by(func.max(ConversationMemory.created_at).desc())
                        .limit(top)
                    )
                ).all()
            )
        started = time.perf_counter()
        loaded = 0
        for offset in range(0, len(user_ids), 500):
            chunk = user_ids[offset : offset + 500]
            loaded += await service.warm_cache(chunk)
            sys.stderr.write(f"\r  warming {offset + len(chunk):>8,}/{len(user_ids):,}")
        sys.stderr.write("\n")
        elapsed = time.perf_counter() - started
    print("  memlayer cache warm")
    print("  ─────────────────────────────────")
    print(f"  candidates            {len(user_ids):>10,}")
    print(f"  loaded from Postgres  {loaded:>10,}")
    print(f"  already cached        {len(user_ids) - loaded:>10,}")
    print(f"  time                  {elapsed:>9.1f}s")
    return 0


async def verify(settings: Settings, *, sample: int | None, every: bool) -> int:
    """Audit cached versions against Postgres; exit status 1 if any is stale past the bound.

    ``every``: all users, a page at a time; otherwise ``sample`` users chosen at random.
    """
    bound_s = settings.coherence_bound_ms / 1000
    tally = consistency.Tally()
    started = time.perf_counter()
    async with _opened(settings) as (database, cache, _service):
        if not await cache.ping():
            print(f"error: Redis at {settings.redis_url} does not answer; nothing verified")
            return 2
        if every:
            pages = consistency.every_user(database)
        else:
            pages = _one_page(await consistency.random_users(database, sample or 1000))
        async for page in pages:
            result = await consistency.compare(cache, page, bound_s, export=False)
            if result is None:
                print("error: the cache cannot be read now (breaker open or epoch unsure)")
                return 2
            tally.merge(result)
            sys.stderr.write(f"\r  verified {tally.checked:>10,} users")
        sys.stderr.write("\n")
        generation = cache.generation
    elapsed = time.perf_counter() - started
    rows = [
        ("checked", f"{tally.checked:,}"),
        ("consistent", f"{tally.consistent:,}"),
        ("stale (past bound)", f"{tally.stale:,}"),
        ("missing (not cached)", f"{tally.missing:,}"),
        ("worst staleness", f"{tally.worst_staleness_s:.3f}s"),
        ("bound", f"{bound_s:.3f}s (MEMLAYER_COHERENCE_BOUND_MS)"),
        ("generation", "n/a" if generation is None else str(generation)),
        ("time", f"{elapsed:.1f}s"),
    ]
    print("  memlayer cache verify" + ("  (every user)" if every else f"  (sample of {sample})"))
    print("  " + "─" * 44)
    for name, value in rows:
        print(f"  {name:<22}{value}")
    if tally.stale:
        users = ", ".join(str(u) for u in tally.stale_users)
        print(f"  stale users (first {len(tally.stale_users)}): {users}")
        print("  fix: memlayer cache invalidate --user ID (and see docs/runbook.md)")
        return 1
    return 0


async def _one_page(
    page: list[consistency.DatabaseVersion],
) -> AsyncIterator[list[consistency.DatabaseVersion]]:
    yield page
