"""`memlayer bench-invalidation` runs end to end on real Redis (a smoke: a few writes)."""

from __future__ import annotations

import pytest

from memlayer.bench_invalidation import run_bench_invalidation
from memlayer.settings import Settings
from tests.support.services import base_redis_url


async def test_the_lag_bench_reports_both_mechanisms(capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_bench_invalidation(
        Settings(redis_url=base_redis_url()),
        writes=20,
        interval_ms=1.0,
        modes=["tracking", "channel"],
    )

    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["tracking"][1:3] == ["20", "20"]  # writes, seen
    assert rows["channel"][1:3] == ["20", "20"]


async def test_the_lag_bench_refuses_a_cluster_url(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(redis_url="redis+cluster://127.0.0.1:7000")
    assert (
        await run_bench_invalidation(settings, writes=1, interval_ms=1.0, modes=["tracking"]) == 2
    )
    assert "standalone Redis" in capsys.readouterr().err
