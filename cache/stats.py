"""The cache's numbers for people: request counts, THE hit ratio, keys and memory.

The hit ratio is the SRE's first number, so it is defined once, here: hits over every
lookup the cache was asked for (hits, misses, errors and bypasses; a load that could
not use Redis is a lookup the cache did not serve). The ops summary (every worker of the
service: :meth:`RequestCounts.from_samples`), :class:`CacheStats` (this process) and
``memlayer cache stats`` (which shows the serving service's summary) all use it; the
alert and the dashboard in ``deploy/`` spell the same ratio in PromQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
class RequestCounts:
    """Context loads by how the cache answered (``memlayer_cache_requests``)."""

    hits: float = 0.0
    misses: float = 0.0
    errors: float = 0.0
    bypasses: float = 0.0

    @classmethod
    def now(cls) -> RequestCounts:
        """This process's counts."""
        return cls(
            hits=current(metrics.HIT),
            misses=current(metrics.MISS),
            errors=current(metrics.ERROR),
            bypasses=current(metrics.BYPASS),
        )

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> RequestCounts:
        """The counts in collected samples, e.g. every worker's (``memlayer.metrics``)."""
        by_result: dict[str, float] = {}
        for s in samples:
            if s.name == _REQUESTS_SAMPLE:
                result = s.labels.get("result", "")
                by_result[result] = by_result.get(result, 0.0) + s.value
        return cls(
            hits=by_result.get("hit", 0.0),
            misses=by_result.get("miss", 0.0),
            errors=by_result.get("error", 0.0),
            bypasses=by_result.get("bypass", 0.0),
        )

    @property
    def lookups(self) -> float:
        return self.hits + self.misses + self.errors + self.bypasses

    @property
    def hit_ratio(self) -> float | None:
        return hit_ratio(self.hits, self.lookups)

    def by_result(self) -> dict[str, float]:
        """Keyed by the metric's ``result`` label, as the ops summary shows them."""
        return {
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
