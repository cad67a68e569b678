"""A JSON summary of cache health for the ops page (the Prometheus text is at /metrics).

It describes the whole service: under ``memlayer serve --workers N`` every worker's
counters are summed (``memlayer.metrics.service_samples``), whichever worker answers.
The hit ratio and the near / Redis / Postgres shares come from ``cache.stats`` (the one
definition); ``near_cache`` says how each worker's near-cache is doing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prometheus_client.samples import Sample

from memlayer import multiproc
from memlayer.api.deps import Services
from memlayer.api.openapi import errors
from memlayer.cache import RequestCounts
from memlayer.metrics import sample_total, service_samples

router = APIRouter(prefix="/ops", tags=["ops"])


_LOAD_SECONDS = "memlayer_memory_load_seconds"
_LAG_SECONDS = "memlayer_near_cache_invalidation_lag_seconds"


def _quantile(samples: list[Sample], histogram: str, q: float, **labels: str) -> float | None:
    """Approximate a quantile from a histogram's cumulative buckets (summed over samples
    whose labels include ``labels``): the upper bound of the bucket that holds it."""
    totals: dict[float, float] = {}
    name = f"{histogram}_bucket"
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            le = float(s.labels["le"])
            totals[le] = totals.get(le, 0.0) + s.value
    buckets = sorted(totals.items())
    if not buckets or buckets[-1][1] == 0:
        return None
    target = q * buckets[-1][1]
    return next(bound for bound, count in buckets if count >= target)


def _by_label(
    samples: list[Sample], name: str, label: str, values: tuple[str, ...]
) -> dict[str, float]:
    return {v: sample_total(samples, name, **{label: v}) for v in values}


def near_cache_numbers(samples: list[Sample]) -> dict[str, Any]:
    """The near-cache of every worker: size, what removed entries, re-checks, link, lag."""
    return {
        "links_up": sample_total(samples, "memlayer_near_cache_links_up"),
        "entries": sample_total(samples, "memlayer_near_cache_entries"),
        "bytes": sample_total(samples, "memlayer_near_cache_bytes"),
        "evictions": _by_label(
            samples,
            "memlayer_near_cache_evictions_total",
            "reason",
            ("capacity", "invalidated", "expired", "superseded", "recheck"),
        ),
        "drops": _by_label(
            samples,
            "memlayer_near_cache_drops_total",
            "reason",
            (
                "link_lost",
                "flush_all",
                "breaker_opened",
                "generation_changed",
                "epoch_changed",
                "closed",
            ),
        ),
        "fills": _by_label(
            samples,
            "memlayer_near_cache_fills_total",
            "outcome",
            ("installed", "raced", "not_serving", "too_large"),
        ),
        "rechecks": _by_label(
            samples,
            "memlayer_near_cache_rechecks_total",
            "result",
            ("consistent", "mismatch", "missing", "raced", "error"),
        ),
        "invalidation_lag_seconds": {
            "p50": _quantile(samples, _LAG_SECONDS, 0.5),
            "p99": _quantile(samples, _LAG_SECONDS, 0.99),
        },
    }


def summary_numbers(samples: list[Sample]) -> dict[str, Any]:
    requests = RequestCounts.from_samples(samples)
    shares = requests.tier_shares
    return {
        "cache_requests": requests.by_result(),
        "hit_ratio": requests.hit_ratio,
        "tier_shares": None if shares is None else shares.as_dict(),
        "db_queries_total": sample_total(samples, "memlayer_db_queries_total"),
        "fills": {
            o: sample_total(samples, "memlayer_cache_fills_total", outcome=o)
            for o in ("stored", "stale_refused", "lease_lost")
        },
        "writes": {
            o: sample_total(samples, "memlayer_memory_writes_total", outcome=o)
            for o in ("ok", "rejected", "error")
        },
        "load_latency_seconds": {
            source: {
                "p50": _quantile(samples, _LOAD_SECONDS, 0.5, source=source),
                "p99": _quantile(samples, _LOAD_SECONDS, 0.99, source=source),
            }
            for source in ("near", "cache", "database")
        },
        "near_cache": near_cache_numbers(samples),
        "ws_sessions_active": sample_total(samples, "memlayer_ws_sessions_active"),
    }


@router.get(
    "/summary",
    summary="Cache hit ratio per tier, latency, DB queries, near-cache and breaker state",
    responses=errors(),
)
async def summary(services: Services) -> dict[str, Any]:
    """Numbers of every worker of the service; ``breaker_open`` if any worker's is open."""
    samples = service_samples()
    numbers = summary_numbers(samples)
    if multiproc.metrics_dir() is None:
        # One process: its own cache is the service's (the gauge is process-global, and
        # tests run several caches in one process).
        workers, breaker_open = 1, int(services.cache.breaker_open)
    else:
        workers = int(sample_total(samples, "memlayer_api_workers"))
        breaker_open = int(sample_total(samples, "memlayer_cache_breaker_open"))
    numbers["workers"] = workers
    numbers["workers_breaker_open"] = breaker_open
    numbers["breaker_open"] = breaker_open > 0
    return numbers
