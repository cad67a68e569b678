"""THE hit ratio and the per-tier shares: one definition (cache/stats.py) for every view."""

from __future__ import annotations

import pytest

from memlayer.cache import RequestCounts


def test_near_and_redis_hits_are_both_served_by_the_cache() -> None:
    counts = RequestCounts(near=700, hits=200, misses=60, errors=10, bypasses=30)

    assert counts.lookups == 1000
    assert counts.hit_ratio == pytest.approx(0.9)
    shares = counts.tier_shares
    assert shares is not None
    assert shares.as_dict() == pytest.approx({"near": 0.7, "redis": 0.2, "postgres": 0.1})
    assert sum(shares.as_dict().values()) == pytest.approx(1.0)


def test_no_lookups_means_no_shares_rather_than_zeros() -> None:
    assert RequestCounts().tier_shares is None and RequestCounts().hit_ratio is None


def test_a_summary_without_near_counts_reads_as_none_served_from_memory() -> None:
    # An older server's ops summary: no "near" result at all.
    counts = RequestCounts.from_results({"hit": 9, "miss": 1, "error": 0, "bypass": 0})

    assert counts.near == 0 and counts.hit_ratio == pytest.approx(0.9)
    assert RequestCounts.from_results(counts.by_result()) == counts
