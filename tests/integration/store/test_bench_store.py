"""`memlayer bench store` runs end to end on real Postgres and Redis (a smoke: tiny numbers)."""

from __future__ import annotations

import pytest

from memlayer.bench_store import run_bench_store
from memlayer.settings import Settings


async def test_the_store_bench_prints_every_row_and_memlayer_reads_cost_postgres_nothing(
    cached_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_bench_store(
        cached_settings, namespaces=5, items=6, concurrency=4, reads=80, runs=1
    )

    out = capsys.readouterr().out
    assert code == 0
    rows = {line[:38].strip(): line[38:].split() for line in out.splitlines()}
    for name in (
        "memlayer aget (near-cache)",
        "memlayer asearch (near-cache)",
        "memlayer aget",
        "memlayer asearch(limit=5)",
    ):
        assert rows[name][3:5] == ["0.00", "0.00"], rows[name]  # PG statements, writes /1k
    [share] = [
        float(line.split()[-1].rstrip("%"))
        for line in out.splitlines()
        if "near rows' namespace lookups answered from process memory" in line
    ]
    # All of them, unless the link was lost mid-run on a busy machine (a drop: misses).
    assert share >= 90.0, out
    assert float(rows["peer aget (defaults)"][4]) > 0  # the peer's get is a write statement
    assert "bare Redis GET + msgpack decode" in rows
    assert "memlayer Postgres writes / 1,000 warm reads (target 0)         0.00" in out


async def test_with_the_near_cache_disabled_the_bench_leaves_its_rows_out_and_says_why(
    cached_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = cached_settings.model_copy(update={"near_cache_enabled": False})
    code = await run_bench_store(settings, namespaces=3, items=4, concurrency=2, reads=20, runs=1)

    out = capsys.readouterr().out
    assert code == 0
    assert "near-cache rows left out: the near-cache is disabled here" in out
    assert "(near-cache)" not in out and "memlayer aget " in out
