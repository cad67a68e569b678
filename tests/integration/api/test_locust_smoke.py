"""A short headless Locust run against a real server on real Postgres and Redis."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from loadtests.smoke import run_locust
from memlayer.memory.models import ConversationMemory, Session
from memlayer.seed import seed


async def test_mixed_smoke_run_has_no_failures_and_returning_users_hit_the_cache(
    server,
    api_settings,
    database,
    tmp_path,
):
    credentials = tmp_path / "credentials.csv"
    seeded = await seed(api_settings, users=40, memories=3, credentials=credentials)
    # As on call before a load test (`memlayer cache warm`): returning users start warm.
    warmed = await server.services.memory.warm_cache(
        list(range(seeded.first_user_id, seeded.last_user_id + 1))
    )
    assert warmed == seeded.users
    async with database.sessionmaker() as db:
        rows_before = await db.scalar(select(func.count()).select_from(ConversationMemory))

    result = await asyncio.to_thread(
        run_locust,
        server.base_url,
        users=50,
        spawn_rate=25,
        run_time="20s",
        workdir=tmp_path,
        credentials=credentials,
    )

    assert result.returncode == 0, result.output_tail
    turns = result.entry("WS", "turn")
    assert turns.requests > 0 and turns.failures == 0, result.failures
    assert result.total.failures == 0, result.failures
    sources = result.memory_sources
    assert sources.get("returning", {}).get("cache", 0) > 0, sources
    # Served by a cache tier: Redis, or the serving process's near-cache.
    served = result.memory_source_share("returning", "cache") + result.memory_source_share(
        "returning", "near"
    )
    assert served > 0.95, sources
    anonymous = sources.get("anonymous", {})
    assert sum(anonymous.values()) > 0 and set(anonymous) == {"none"}, sources
    # The master read the service's ops summary during the run: its hit ratio since start.
    watched = result.memlayer
    assert watched["summary_error"] is None, watched
    assert watched["cache_lookups_since_start"] > 0, watched
    assert 0 < watched["hit_ratio_since_start"] <= 1, watched

    async with database.sessionmaker() as db:
        rows_after = await db.scalar(select(func.count()).select_from(ConversationMemory))
        anonymous_sessions = await db.scalar(
            select(func.count()).select_from(Session).where(Session.user_id.is_(None))
        )
    signed_in_turns = sum(
        n for persona, counts in sources.items() if persona != "anonymous" for n in counts.values()
    )
    assert anonymous_sessions > 0
    # Every new memory row comes from a signed-in turn: anonymous turns saved nothing. A
    # turn still in flight when Locust stops is saved but never tallied: one per user.
    assert rows_after - rows_before <= signed_in_turns + 50


async def test_distributed_mode_merges_the_workers_results(server, api_settings, tmp_path):
    """A master with two local workers: requests and memory sources add up on the master."""
    credentials = tmp_path / "credentials.csv"
    await seed(api_settings, users=10, memories=2, credentials=credentials)
    result = await asyncio.to_thread(
        run_locust,
        server.base_url,
        users=12,
        spawn_rate=12,
        run_time="10s",
        workdir=tmp_path,
        credentials=credentials,
        processes=2,
    )
    assert result.returncode == 0, result.output_tail
    turns = result.entry("WS", "turn")
    assert turns.requests > 0 and turns.failures == 0, result.failures
    loaded = result.entry("WS", "memory_loaded").requests
    assert sum(n for counts in result.memory_sources.values() for n in counts.values()) == loaded
    assert result.memlayer["summary_error"] is None, result.memlayer  # only the master reads
