"""Read the service's ``/metrics`` page into the two numbers a load test watches.

While Locust drives traffic, the SRE's first questions are "is the cache serving it?" (hit
ratio) and "how hard is Postgres working?" (queries per second). Both come from counters on
the service's Prometheus endpoint; this module parses that text and turns two scrapes into
rates. It is pure (no Locust, no network) so unit tests can feed it sample text.

Hit ratio here is ``hit / (hit + miss + error + bypass)``: a load that hit a Redis error, or
skipped Redis while the circuit breaker was open (``bypass``), was not served by the cache.
Anonymous turns never reach the cache and are not counted at all. The Prometheus alert, the
Grafana panel and the service's /api/v1/ops/summary use the same formula.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

CACHE_REQUESTS = "memlayer_cache_requests_total"
DB_QUERIES = "memlayer_db_queries_total"

_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?:\{(?P<labels>.*)\})?"
    r"\s+(?P<value>\S+)"
    r"(?:\s+-?\d+)?\s*$"
)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_samples(text: str) -> Iterator[Sample]:
    """Samples of the Prometheus text exposition format; comments and junk lines are skipped."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        yield Sample(match["name"], _parse_labels(match["labels"] or ""), value)


def _parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, raw in _LABEL.findall(text):
        labels[key] = re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group(0)], raw)
    return labels


@dataclass(frozen=True)
class ServiceCounters:
    """Cumulative counters of one API process at one moment."""

    cache_hits: float = 0.0
    cache_misses: float = 0.0
    cache_errors: float = 0.0
    cache_bypass: float = 0.0
    db_queries: float = 0.0

    @classmethod
    def from_text(cls, text: str) -> ServiceCounters:
        by_result = {"hit": 0.0, "miss": 0.0, "error": 0.0, "bypass": 0.0}
        db_queries = 0.0
        for sample in parse_samples(text):
            if math.isnan(sample.value):
                continue
            if sample.name == CACHE_REQUESTS:
                result = sample.labels.get("result", "")
                if result in by_result:
                    by_result[result] += sample.value
            elif sample.name == DB_QUERIES:
                db_queries += sample.value
        return cls(
            cache_hits=by_result["hit"],
            cache_misses=by_result["miss"],
            cache_errors=by_result["error"],
            cache_bypass=by_result["bypass"],
            db_queries=db_queries,
        )

    @property
    def cache_lookups(self) -> float:
        return self.cache_hits + self.cache_misses + self.cache_errors + self.cache_bypass

    @property
    def hit_ratio(self) -> float | None:
        """Since the process started; ``None`` before the first lookup."""
        return hit_ratio(self.cache_hits, self.cache_lookups)


def hit_ratio(hits: float, lookups: float) -> float | None:
    return hits / lookups if lookups > 0 else None


@dataclass(frozen=True)
class Window:
    """What happened between two scrapes."""

    seconds: float
    cache_lookups: float
    hit_ratio: float | None
    db_queries: float
    db_qps: float


def window(before: ServiceCounters, after: ServiceCounters, seconds: float) -> Window:
    """Rates between two scrapes ``seconds`` apart.

    A counter that went down means the process restarted; like Prometheus' ``rate()``, the
    new value then counts as the increase.
    """
    if seconds <= 0:
        raise ValueError("scrapes must be apart in time")

    def increase(field: str) -> float:
        old, new = getattr(before, field), getattr(after, field)
        return new if new < old else new - old

    hits = increase("cache_hits")
    lookups = hits + increase("cache_misses") + increase("cache_errors") + increase("cache_bypass")
    db_queries = increase("db_queries")
    return Window(
        seconds=seconds,
        cache_lookups=lookups,
        hit_ratio=hit_ratio(hits, lookups),
        db_queries=db_queries,
        db_qps=db_queries / seconds,
    )


def format_ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.1%}"
