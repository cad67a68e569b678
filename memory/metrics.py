"""Prometheus metrics of the memory tier (the cache tier has its own).

Gauges say how they aggregate across the worker processes of one service (Prometheus
multiprocess mode): the outbox gauges are the same table seen by every live process,
so the service's value is the largest a live process reports.
"""

from prometheus_client import Counter, Gauge, Histogram

from memlayer.cache.metrics import CONSISTENCY_CHECKS

DB_QUERIES = Counter(
    "memlayer_db_queries_total",
    "Postgres statements issued by the memory tier, by operation.",
    ["op"],
)
MEMORY_WRITES = Counter(
    "memlayer_memory_writes_total",
    "Memory writes by outcome: ok (committed and acknowledged), duplicate (a retried "
    "turn already stored: nothing written), rejected (bad input, unknown user, another "
    "user's memory), unknown (the connection failed during COMMIT: maybe saved) or "
    "error (the store failed; nothing saved).",
    ["outcome"],
)
REPLICA_DISCARDED = Counter(
    "memlayer_memory_replica_discarded_total",
    "Replica reads older than a version this process knew of; re-read on the primary.",
)

# --- the outbox of cache invalidations (memory/outbox.py, memory/drainer.py) -----------
OUTBOX_BACKLOG = Gauge(
    "memlayer_cache_outbox_backlog",
    "Outbox rows: committed writes Redis is not yet known to hold (all families).",
    multiprocess_mode="livemax",
)
OUTBOX_OLDEST_AGE = Gauge(
    "memlayer_cache_outbox_oldest_age_seconds",
    "Age of the oldest outbox row (0 when empty).",
    multiprocess_mode="livemax",
)
OUTBOX_DRAINED = Counter(
    "memlayer_cache_outbox_drained_total",
    "Outbox rows drained (a versioned marker installed in Redis), by key family.",
    ["family"],
)
OUTBOX_ACKED = Counter(
    "memlayer_cache_outbox_acked_total",
    "Outbox rows cleared by their writer once Redis held the version, by key family.",
    ["family"],
)
OUTBOX_FAILURES = Counter(
    "memlayer_cache_outbox_failures_total",
    "Outbox drain or acknowledgement rounds that failed (rows stay; retried), by stage.",
    ["stage"],
)

# --- the consistency checker (memory/consistency.py) ---------------------------------
# Its counter lives in the cache tier (the near-cache's re-checks count there too, tier=near).
CONSISTENCY_STALENESS = Histogram(
    "memlayer_cache_consistency_staleness_seconds",
    "How long Postgres had held a newer version when Redis was seen holding an older "
    "complete value (observed by the consistency checker).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
)

CHECK_CONSISTENT = CONSISTENCY_CHECKS.labels("redis", "consistent")
CHECK_STALE = CONSISTENCY_CHECKS.labels("redis", "stale")
CHECK_MISSING = CONSISTENCY_CHECKS.labels("redis", "missing")
STORED_VALUES_DROPPED = Counter(
    "memlayer_stored_values_dropped_total",
    "Values read from Postgres that no tier can carry (a 400-digit number, NaN, a NUL "
    "character), left out of the context instead of failing every load of the user.",
    ["field"],
)
