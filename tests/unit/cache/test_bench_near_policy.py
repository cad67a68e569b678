"""`memlayer bench-near-policy` runs end to end and prints its tables (a smoke, tiny sizes)."""

from __future__ import annotations

import pytest

from memlayer.bench_near_policy import hit_ratio, policies, zipf_workload
from memlayer.cli import main


def test_the_policy_bench_prints_hit_ratios_and_costs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(
            [
                "bench-near-policy",
                *("--users", "500", "--ops", "3000", "--cost-ops", "500"),
                *("--exponents", "1.0", "--capacities", "0.05"),
            ]
        )

    out = capsys.readouterr().out
    assert done.value.code == 0
    assert "Hit ratio of reads" in out and "lru (cachetools)" in out
    assert "NearCache (lru, bounds, tickets)" in out


def test_a_frequency_aware_policy_loses_its_edge_when_popularity_drifts() -> None:
    """The measured reason for LRU, kept as a specification at a small size."""
    lru, lfu = policies()["lru (cachetools)"], policies()["lfu (cachetools)"]
    static = zipf_workload(5000, 1.0, 40_000, 0.05, drift=False)
    drift = zipf_workload(5000, 1.0, 40_000, 0.05, drift=True)

    assert hit_ratio(lfu(250), static) > hit_ratio(lru(250), static)
    assert hit_ratio(lfu(250), drift) < hit_ratio(lru(250), drift) - 0.05
