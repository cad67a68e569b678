"""Prometheus metrics of the cache tier (default registry, served by the API's /metrics).

Label children used on the hot path are bound once here, so a hit costs a counter
increment and a histogram observation, not a label lookup.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "memlayer_cache_requests_total",
    "Context loads by how the cache tiers answered: near (this process's near-cache, no "
    "round trip), hit (Redis), miss, error or bypass (Postgres, or a fill).",
    ["result"],
)
FILLS = Counter(
    "memlayer_cache_fills_total",
    "Cache fills after a miss, by outcome (lease_lost: our lease had expired at fill time).",
    ["outcome"],
)
CORRUPT = Counter(
    "memlayer_cache_corrupt_total",
    "Cached values that could not be decoded (treated as a miss and replaced).",
)
LOOP_STALLS = Counter(
    "memlayer_cache_loop_stalls_total",
    "Redis deadlines that expired because the event loop stalled (not counted by the breaker).",
)
BACKGROUND_TIMEOUTS = Counter(
    "memlayer_cache_background_check_timeouts_total",
    "Periodic checks (epoch watch, consistency sample) whose Redis call timed out "
    "(retried at their next interval, not counted by the breaker).",
)
OVERSIZE = Counter(
    "memlayer_cache_oversize_total",
    "Contexts not cached because their encoding exceeded cache_max_value_bytes.",
)
LEASE_WAITS = Counter(
    "memlayer_cache_lease_waits_total",
    "Loads that waited for another process's fill, by what they got.",
    ["outcome"],
)
LOAD_SECONDS = Histogram(
    "memlayer_memory_load_seconds",
    "Memory context load latency by the tier that served it.",
    ["source"],
    buckets=(
        0.0001,
        0.00025,
        0.0005,
        0.00075,
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
    ),
)
# Gauges say how several worker processes of one `memlayer serve` combine (Prometheus
# multiprocess mode, see memlayer.multiproc): "livesum" counts over the live workers,
# "livemax" takes the highest of theirs. Without a mode a gauge is exported once per pid.
BREAKER_OPEN = Gauge(
    "memlayer_cache_breaker_open",
    "1 while the Redis circuit breaker is open (summed: workers with it open).",
    multiprocess_mode="livesum",
)
DIRTY_USERS = Gauge(
    "memlayer_cache_dirty_users",
    "Users written while Redis was unreachable, awaiting invalidation.",
    multiprocess_mode="livesum",
)
GENERATION = Gauge(
    "memlayer_cache_generation",
    "The cache generation this process reads.",
    multiprocess_mode="livemax",
)
TURNOVERS = Counter(
    "memlayer_cache_turnovers_total",
    "Cache generation turnovers started by this process, by reason: epoch_missing "
    "(Redis lost its epoch record: flush, restart without data), run_changed (Redis "
    "restarted, was restored or failed over), generation_behind (Redis holds a lower "
    "generation than known), dirty_overflow (too many writes missed Redis), operator "
    "(asked for).",
    ["reason"],
)
# The consistency checker's counts (memory/consistency.py compares Redis with Postgres, the
# near-cache's sampled re-checks compare it with Redis): defined here, where both tiers can
# reach it. ``tier``: redis or near.
CONSISTENCY_CHECKS = Counter(
    "memlayer_cache_consistency_checks_total",
    "Cached versions checked, by tier and result. tier=redis (against Postgres): "
    "consistent (current, or behind by less than the coherence bound), stale (behind by "
    "more than the bound) or missing (nothing servable cached). tier=near (a sampled near "
    "hit re-read from Redis): consistent, stale (Redis holds another version and no "
    "invalidation came) or missing (Redis holds nothing and no invalidation came).",
    ["tier", "result"],
)
WRITE_THROUGH = Counter(
    "memlayer_cache_write_through_total",
    "Write-through installs after a commit, by outcome.",
    ["outcome"],
)

NEAR = REQUESTS.labels("near")
HIT = REQUESTS.labels("hit")
MISS = REQUESTS.labels("miss")
ERROR = REQUESTS.labels("error")
BYPASS = REQUESTS.labels("bypass")
FILL_STORED = FILLS.labels("stored")
FILL_STALE = FILLS.labels("stale_refused")
FILL_LEASE_LOST = FILLS.labels("lease_lost")
WAIT_VALUE = LEASE_WAITS.labels("value")
WAIT_TIMEOUT = LEASE_WAITS.labels("timeout")
LOAD_NEAR = LOAD_SECONDS.labels("near")
LOAD_CACHE = LOAD_SECONDS.labels("cache")
LOAD_DATABASE = LOAD_SECONDS.labels("database")
WRITE_STORED = WRITE_THROUGH.labels("stored")
WRITE_STALE = WRITE_THROUGH.labels("stale_refused")
WRITE_DEFERRED = WRITE_THROUGH.labels("deferred")
WRITE_ERROR = WRITE_THROUGH.labels("error")
