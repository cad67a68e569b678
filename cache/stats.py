"""The cache's numbers for people: request counts, THE hit ratio per tier, keys and memory.

The hit ratio is the SRE's first number, so it is defined once, here. Every context load
of a user is one *lookup*, answered by exactly one of: the near-cache (``near``: process
memory, no round trip), Redis (``hit``), or neither (``miss``, ``error``, ``bypass``: the
fill protocol or Postgres; a load that could not use Redis is a lookup the cache did not
serve). Then

* hit ratio       = (near + hit) / lookups   (served by a cache tier)
* near share      = near / lookups
* Redis share     = hit / lookups
* Postgres share  = (miss + error + bypass) / lookups

and the three shares add up to 1. The ops summary (every worker of the service:
:meth:`RequestCounts.from_samples`), :class:`CacheStats` (this process), ``memlayer cache
stats`` and the Locust tab (which show the serving service's summary) all use these; the
alerts and the dashboard in ``deploy/`` spell the same ratios in PromQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.samples import Sample

from memlayer.cache import metrics
from memlayer.cache.errors import REDIS_ERRORS
from memlayer.cache.store import ContextStore
from memlayer.metrics import current

_MEMORY_USAGE_SAMPLE = 100
_REQUESTS_SAMPLE = "memlayer_cache_requests_total"


def hit_ratio(hits: float, lookups: float) -> float | None:
    """Hits per lookup; None before the first lookup."""
    return hits / lookups if lookups > 0 else None


@dataclass(frozen=True, slots=True)
class TierShares:
    """Which tier answered the lookups: shares that add up to 1."""

    near: float
    redis: float
    postgres: float

    def as_dict(self) -> dict[str, float]:
        return {"near": self.near, "redis": self.redis, "postgres": self.postgres}


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """Context loads by how the cache tiers answered (``memlayer_cache_requests``)."""

    hits: float = 0.0  # Redis
    misses: float = 0.0
    errors: float = 0.0
    bypasses: float = 0.0
    near: float = 0.0  # the near-cache

    @classmethod
    def now(cls) -> RequestCounts:
        """This process's counts."""
        return cls(
            hits=current(metrics.HIT),
            misses=current(metrics.MISS),
            errors=current(metrics.ERROR),
            bypasses=current(metrics.BYPASS),
            near=current(metrics.NEAR),
        )

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> RequestCounts:
        """The counts in collected samples, e.g. every worker's (``memlayer.metrics``)."""
        by_result: dict[str, float] = {}
        for s in samples:
            if s.name == _REQUESTS_SAMPLE:
                result = s.labels.get("result", "")
                by_result[result] = by_result.get(result, 0.0) + s.value
        return cls.from_results(by_result)

    @classmethod
    def from_results(cls, by_result: Mapping[str, Any]) -> RequestCounts:
        """From counts keyed by the metric's ``result`` label (the ops summary's
        ``cache_requests``); absent results count 0 (a server without a near-cache)."""
        return cls(
            hits=float(by_result.get("hit", 0.0)),
            misses=float(by_result.get("miss", 0.0)),
            errors=float(by_result.get("error", 0.0)),
            bypasses=float(by_result.get("bypass", 0.0)),
            near=float(by_result.get("near", 0.0)),
        )

    @property
    def lookups(self) -> float:
        return self.near + self.hits + self.misses + self.errors + self.bypasses

    @property
    def hit_ratio(self) -> float | None:
        """Lookups served by a cache tier (near-cache or Redis)."""
        return hit_ratio(self.near + self.hits, self.lookups)

    @property
    def tier_shares(self) -> TierShares | None:
        """Near / Redis / Postgres shares of the lookups; None before the first one."""
        lookups = self.lookups
        if lookups <= 0:
            return None
        return TierShares(
            near=self.near / lookups,
            redis=self.hits / lookups,
            postgres=(self.misses + self.errors + self.bypasses) / lookups,
        )

    def by_result(self) -> dict[str, float]:
        """Keyed by the metric's ``result`` label, as the ops summary shows them."""
        return {
            "near": self.near,
            "hit": self.hits,
            "miss": self.misses,
            "error": self.errors,
            "bypass": self.bypasses,
        }


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot for the ops page and ``memlayer cache stats``."""

    enabled: bool
    requests: RequestCounts
    keys: int | None  # memlayer keys of this prefix (SCAN); None if Redis did not answer
    bytes_used: int | None  # MEMORY USAGE, extrapolated from a sample; None if unsupported
    breaker_state: str
    generation: int | None
    dirty_users: int
    near_serving: bool = False  # the near-cache serves hits now (its link is up)
    near_entries: int = 0
    near_bytes: int = 0  # the encoded size its byte bound counts

    @property
    def hit_ratio(self) -> float | None:
        return self.requests.hit_ratio


@dataclass(frozen=True, slots=True)
class KeyUsage:
    keys: int | None  # None if the SCAN failed
    bytes_used: int | None  # None if MEMORY USAGE failed or is not supported (fakeredis)


async def key_usage(store: ContextStore) -> KeyUsage:
    """Count this prefix's keys by SCAN (never KEYS); size a sample of them."""
    n_keys = 0
    sample: list[bytes] = []
    try:
        async for key in store.iter_keys():
            n_keys += 1
            if len(sample) < _MEMORY_USAGE_SAMPLE:
                sample.append(key)
    except REDIS_ERRORS:
        return KeyUsage(keys=None, bytes_used=None)
    if n_keys == 0:
        return KeyUsage(keys=0, bytes_used=0)
    try:
        sizes = [await store.memory_usage(key) or 0 for key in sample]
    except REDIS_ERRORS:  # e.g. fakeredis has no MEMORY USAGE
        return KeyUsage(keys=n_keys, bytes_used=None)
    return KeyUsage(keys=n_keys, bytes_used=int(sum(sizes) / len(sizes) * n_keys))
