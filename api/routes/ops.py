"""A JSON summary of cache health for the ops page (the Prometheus text is at /metrics)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prometheus_client import REGISTRY

from memlayer.api.deps import Services
from memlayer.api.openapi import errors
from memlayer.cache import RequestCounts

router = APIRouter(prefix="/ops", tags=["ops"])


Samples = list[Any]


def _samples() -> Samples:
    """Every sample of the registry, collected once per summary."""
    return [sample for family in REGISTRY.collect() for sample in family.samples]


def _sum(samples: Samples, metric: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _quantile(samples: Samples, source: str, q: float) -> float | None:
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


def summary_numbers() -> dict[str, Any]:
    samples = _samples()
    requests = RequestCounts.now()
    return {
        "cache_requests": requests.by_result(),
        "hit_ratio": requests.hit_ratio,
        "db_queries_total": _sum(samples, "memlayer_db_queries_total"),
        "fills": {
            o: _sum(samples, "memlayer_cache_fills_total", outcome=o)
            for o in ("stored", "stale_refused", "lease_lost")
        },
        "writes": {
            o: _sum(samples, "memlayer_memory_writes_total", outcome=o)
            for o in ("ok", "rejected", "error")
        },
        "load_latency_seconds": {
            source: {
                "p50": _quantile(samples, source, 0.5),
                "p99": _quantile(samples, source, 0.99),
            }
            for source in ("cache", "database")
        },
        "ws_sessions_active": _sum(samples, "memlayer_ws_sessions_active"),
    }


@router.get(
    "/summary",
    summary="Cache hit ratio, latency, DB queries and breaker state",
    responses=errors(),
)
async def summary(services: Services) -> dict[str, Any]:
    numbers = summary_numbers()
    numbers["breaker_open"] = services.cache.breaker_open
    return numbers
