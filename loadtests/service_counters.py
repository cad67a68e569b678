"""The two numbers a load test watches, from the service's own ops summary.

While Locust drives traffic, the SRE's first questions are "is the cache serving it?" (hit
ratio) and "how hard is Postgres working?" (queries per second). The service answers both in
``GET /api/v1/ops/summary`` with cumulative counts, the numbers its ops page shows; this
module turns two readings into the rates between them.

The hit ratio and the per-tier shares are memlayer's own (:class:`memlayer.cache.RequestCounts`:
"served by a cache tier (near + hit) over every lookup", and the near / Redis / Postgres
shares), so the load test, the ops summary and ``memlayer cache stats`` cannot disagree on
what they are; the Locust image installs memlayer for that. Pure (no Locust, no network) so
unit tests can feed it summaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from memlayer.cache import RequestCounts
from memlayer.cache.stats import TierShares

SUMMARY_PATH = "/api/v1/ops/summary"

_COUNTS = tuple(f.name for f in fields(RequestCounts))


@dataclass(frozen=True)
class ServiceCounters:
    """The service's cumulative counters at one reading."""

    requests: RequestCounts
    db_queries: float

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> ServiceCounters:
        requests = RequestCounts.from_results(summary.get("cache_requests") or {})
        return cls(requests, float(summary.get("db_queries_total", 0)))


@dataclass(frozen=True)
class Window:
    """What happened between two readings."""

    seconds: float
    requests: RequestCounts
    db_queries: float

    @property
    def cache_lookups(self) -> float:
        return self.requests.lookups

    @property
    def hit_ratio(self) -> float | None:
        """``None`` when the cache was asked nothing in the window."""
        return self.requests.hit_ratio

    @property
    def tier_shares(self) -> TierShares | None:
        """Near / Redis / Postgres shares of the window's lookups (None: no lookups)."""
        return self.requests.tier_shares

    @property
    def db_qps(self) -> float:
        return self.db_queries / self.seconds


def window(before: ServiceCounters, after: ServiceCounters, seconds: float) -> Window:
    """Rates between two readings ``seconds`` apart.

    A counter that went down means the process restarted; like Prometheus' ``rate()``, the
    new value then counts as the increase.
    """
    if seconds <= 0:
        raise ValueError("readings must be apart in time")
    requests = RequestCounts(
        **{
            name: _increase(getattr(before.requests, name), getattr(after.requests, name))
            for name in _COUNTS
        }
    )
    return Window(seconds, requests, _increase(before.db_queries, after.db_queries))


def _increase(old: float, new: float) -> float:
    return new if new < old else new - old


def format_ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.1%}"


def format_shares(shares: TierShares | None) -> str:
    """``near 80.0% · redis 15.0% · postgres 5.0%`` (or n/a)."""
    if shares is None:
        return "n/a"
    return " · ".join(f"{tier} {share:.1%}" for tier, share in shares.as_dict().items())
