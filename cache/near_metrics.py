"""Prometheus metrics of the near-cache tier and its invalidation link.

Separate from ``cache.metrics`` so the tier can be switched off without touching the
Redis tier's names. Gauges say how several workers combine (``multiprocess_mode``):
sizes add up, links up are counted. Label children are bound once here; nothing in
this module is touched on a near hit (the hit is counted by the composing load path).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from memlayer.cache.metrics import CONSISTENCY_CHECKS

ENTRIES = Gauge(
    "memlayer_near_cache_entries",
    "Entries in the near-cache (served and memo-only).",
    multiprocess_mode="livesum",
)
BYTES = Gauge(
    "memlayer_near_cache_bytes",
    "Encoded size of the near-cache's entries (the bound is on this sum).",
    multiprocess_mode="livesum",
)
EVICTIONS = Counter(
    "memlayer_near_cache_evictions_total",
    "Entries removed one at a time, by reason: capacity (entries or bytes bound), "
    "invalidated (Redis, or this process's own write, said the key changed), expired "
    "(older than the maximum age, of another generation, or past a store namespace's "
    "earliest item expiry), superseded (older than a "
    "write this process acknowledged), recheck (a sampled re-check found Redis disagreeing).",
    ["reason"],
)
DROPS = Counter(
    "memlayer_near_cache_drops_total",
    "Whole near-cache drops, by reason: link_lost, flush_all, breaker_opened, "
    "generation_changed, epoch_changed (another process turned the cache over), closed.",
    ["reason"],
)
FILLS = Counter(
    "memlayer_near_cache_fills_total",
    "Values read from Redis offered to the near-cache, by outcome: installed (served "
    "from now on), raced (the key was invalidated during the read: kept for decoding "
    "only), not_serving (link down or breaker open: kept for decoding only), too_large.",
    ["outcome"],
)
RECHECKS_SKIPPED = Counter(
    "memlayer_near_cache_rechecks_skipped_total",
    "Sampled near hits not re-checked because as many re-checks were in flight as allowed.",
)
RECHECKS = Counter(
    "memlayer_near_cache_rechecks_total",
    "Sampled near hits re-read from Redis, by result: consistent, mismatch (another "
    "version: evicted), missing (no value: evicted), raced (invalidated meanwhile), error.",
    ["result"],
)
INVALIDATED_KEYS = Counter(
    "memlayer_near_cache_invalidated_keys_total",
    "Key names received on the invalidation link, by kind: entity (a cached value), "
    "probe (a lag probe), epoch (the epoch record: a turnover), other (e.g. a fill "
    "lease), flush (a flush of everything).",
    ["kind"],
)
LINKS_UP = Gauge(
    "memlayer_near_cache_links_up",
    "Processes whose invalidation link is established (near hits are served only then).",
    multiprocess_mode="livesum",
)
LINK_EVENTS = Counter(
    "memlayer_near_cache_link_events_total",
    "Invalidation link transitions: established, lost.",
    ["event"],
)
INVALIDATION_LAG = Histogram(
    "memlayer_near_cache_invalidation_lag_seconds",
    "Time from a probe key's write (wall clock in its name) to its invalidation arriving "
    "here. Same-host clocks; across hosts the clock skew adds to it.",
    buckets=(
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
    ),
)

EVICT_CAPACITY = EVICTIONS.labels("capacity")
EVICT_INVALIDATED = EVICTIONS.labels("invalidated")
EVICT_EXPIRED = EVICTIONS.labels("expired")
EVICT_SUPERSEDED = EVICTIONS.labels("superseded")
EVICT_RECHECK = EVICTIONS.labels("recheck")
FILL_INSTALLED = FILLS.labels("installed")
FILL_RACED = FILLS.labels("raced")
FILL_NOT_SERVING = FILLS.labels("not_serving")
FILL_TOO_LARGE = FILLS.labels("too_large")
KEYS_ENTITY = INVALIDATED_KEYS.labels("entity")
KEYS_PROBE = INVALIDATED_KEYS.labels("probe")
KEYS_EPOCH = INVALIDATED_KEYS.labels("epoch")
KEYS_OTHER = INVALIDATED_KEYS.labels("other")
KEYS_FLUSH = INVALIDATED_KEYS.labels("flush")
LINK_ESTABLISHED = LINK_EVENTS.labels("established")
LINK_LOST = LINK_EVENTS.labels("lost")
# The consistency checker's view of the near tier (see cache.metrics.CONSISTENCY_CHECKS).
CHECK_CONSISTENT = CONSISTENCY_CHECKS.labels("near", "consistent")
CHECK_STALE = CONSISTENCY_CHECKS.labels("near", "stale")
CHECK_MISSING = CONSISTENCY_CHECKS.labels("near", "missing")
