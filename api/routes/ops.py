"""A JSON summary of cache health for the ops page (the Prometheus text is at /metrics).

It describes the whole service: under ``memlayer serve --workers N`` every worker's
counters are summed (``memlayer.metrics.service_samples``), whichever worker answers.
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


def _quantile(samples: list[Sample], source: str, q: float) -> float | None:
    """Approximate a latency quantile from the histogram's cumulative buckets."""
    buckets = sorted(
        (float(s.labels["le"]), s.value)
        for s in samples
        if s.name == "memlayer_memory_load_seconds_bucket" and s.labels.get("source") == source
    )
    if not buckets or buckets[-1][1] == 0:
        return None
    target = q * buckets[-1][1]
    return next(bound for bound, count in buckets if count >= target)


def summary_numbers(samples: list[Sample]) -> dict[str, Any]:
    requests = RequestCounts.from_samples(samples)
    return {
        "cache_requests": requests.by_result(),
        "hit_ratio": requests.hit_ratio,
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
                "p50": _quantile(samples, source, 0.5),
                "p99": _quantile(samples, source, 0.99),
            }
            for source in ("cache", "database")
        },
        "ws_sessions_active": sample_total(samples, "memlayer_ws_sessions_active"),
    }


@router.get(
    "/summary",
    summary="Cache hit ratio, latency, DB queries and breaker state",
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
