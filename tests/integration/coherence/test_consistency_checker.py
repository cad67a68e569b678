"""The consistency checker measures staleness instead of assuming the bound holds.

A stale value is planted the way a bug would leave one: an older complete context
written straight into Redis at the current generation, after Postgres moved on.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from memlayer import cachectl
from memlayer.cache.codec import encode, encode_marker
from memlayer.cache.keys import context_key
from memlayer.memory import consistency
from memlayer.memory.consistency import CheckResult, DatabaseVersion, judge
from memlayer.memory.metrics import CONSISTENCY_STALENESS
from memlayer.records import MemoryContext
from memlayer.settings import Settings
from tests.support.coherence import Node, create_user, start_node
from tests.support.metrics import metric
from tests.support.services import base_redis_url


@pytest.fixture
async def node(coherence_settings: Settings, shared_redis_port: int) -> AsyncIterator[Node]:
    # A bound of 1 ms: any older value is "stale" at once (no waiting in the test).
    settings = coherence_settings.model_copy(update={"coherence_bound_ms": 1})
    made = await start_node(settings, shared_redis_port, background=False)
    yield made
    await made.aclose()


async def _plant(node: Node, user_id: int, raw: bytes) -> None:
    generation = node.cache.generation
    assert generation is not None
    direct = Redis.from_url(base_redis_url())
    await direct.set(context_key(node.settings.cache_key_prefix, user_id, generation), raw)
    await direct.aclose()


async def _three_users(node: Node) -> tuple[int, int, int]:
    """(consistent, stale, missing): written, then one rolled back in Redis, one absent."""
    fresh, stale, absent = [await create_user(node.database) for _ in range(3)]
    for uid in (fresh, stale):
        await node.service.save_conversation_memory(uid, None, "one")
        await node.service.save_conversation_memory(uid, None, "two")
    await _plant(node, stale, encode(MemoryContext(stale, 1)))  # v1 while Postgres has v2
    await node.service.save_conversation_memory(absent, None, "one")
    await _plant(node, absent, encode_marker(1))  # a marker: readers reload, never stale
    return fresh, stale, absent


def test_the_judgement() -> None:
    from memlayer.cache import CachedVersion

    db = DatabaseVersion(user_id=1, version=5, age_s=3.0)
    assert judge(db, CachedVersion(5, True), 2.0).result is CheckResult.CONSISTENT
    assert judge(db, CachedVersion(6, True), 2.0).result is CheckResult.CONSISTENT
    behind = judge(db, CachedVersion(4, True), 2.0)
    assert behind.result is CheckResult.STALE and behind.staleness_s == 3.0
    within = judge(DatabaseVersion(1, 5, 0.5), CachedVersion(4, True), 2.0)
    assert within.result is CheckResult.CONSISTENT and within.staleness_s == 0.5
    assert judge(db, CachedVersion(4, False), 2.0).result is CheckResult.MISSING
    assert judge(db, None, 2.0).result is CheckResult.MISSING


async def test_the_sampler_counts_each_result_and_observes_the_staleness(node: Node) -> None:
    fresh, stale, absent = await _three_users(node)
    before = {
        r: metric("memlayer_cache_consistency_checks_total", tier="redis", result=r)
        for r in CheckResult
    }
    observed = metric("memlayer_cache_consistency_staleness_seconds_count")
    versions = [v for v in await _versions(node) if v.user_id in (fresh, stale, absent)]
    assert len(versions) == 3

    tally = await consistency.compare(node.cache, versions, 0.001, export=True)

    assert tally is not None
    assert (tally.consistent, tally.stale, tally.missing) == (1, 1, 1)
    assert tally.stale_users == [stale] and tally.worst_staleness_s > 0
    after = {
        r: metric("memlayer_cache_consistency_checks_total", tier="redis", result=r)
        for r in CheckResult
    }
    assert {r: after[r] - before[r] for r in CheckResult} == {
        CheckResult.CONSISTENT: 1,
        CheckResult.STALE: 1,
        CheckResult.MISSING: 1,
    }
    assert metric("memlayer_cache_consistency_staleness_seconds_count") == observed + 1
    assert CONSISTENCY_STALENESS is not None


async def test_the_background_round_samples_recent_writes(node: Node) -> None:
    _fresh, stale, _absent = await _three_users(node)
    sampler = consistency.ConsistencySampler(node.database, node.cache, node.settings)
    stale_before = metric("memlayer_cache_consistency_checks_total", tier="redis", result="stale")

    tally = await sampler.check_once()

    assert tally is not None and tally.checked >= 3
    assert stale in tally.stale_users
    assert (
        metric("memlayer_cache_consistency_checks_total", tier="redis", result="stale")
        > stale_before
    )


async def test_cache_verify_audits_every_user_and_fails_on_staleness(
    node: Node, capsys: pytest.CaptureFixture[str]
) -> None:
    _fresh, stale, _absent = await _three_users(node)

    status = await cachectl.verify(node.settings, sample=None, every=True)

    out = capsys.readouterr().out
    assert status == 1
    assert "stale (past bound)" in out and str(stale) in out
    assert "worst staleness" in out


async def test_the_verify_command_runs_from_the_shell(node: Node) -> None:
    await _three_users(node)
    env = {
        **os.environ,
        "MEMLAYER_DATABASE_URL": node.settings.database_url or "",
        "MEMLAYER_REDIS_URL": base_redis_url(),
        "MEMLAYER_CACHE_KEY_PREFIX": node.settings.cache_key_prefix,
        "MEMLAYER_COHERENCE_BOUND_MS": "1",
    }
    command = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "memlayer.cli",
        *("cache", "verify", "--sample", "50"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(command.communicate(), 60)
    out = stdout.decode()
    assert command.returncode == 1, out + stderr.decode()
    assert "memlayer cache verify" in out and "checked" in out


async def _versions(node: Node) -> list[DatabaseVersion]:
    found: list[DatabaseVersion] = []
    async for page in consistency.every_user(node.database):
        found.extend(page)
    return found
