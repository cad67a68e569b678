"""Prometheus metrics of the memory tier (the cache tier has its own)."""

from prometheus_client import Counter

DB_QUERIES = Counter(
    "memlayer_db_queries_total",
    "Postgres statements issued by the memory tier, by operation.",
    ["op"],
)
MEMORY_WRITES = Counter(
    "memlayer_memory_writes_total",
    "Memory writes by outcome: ok (committed and acknowledged), rejected (bad input, "
    "unknown user, another user's memory) or error (the store failed).",
    ["outcome"],
)
STORED_VALUES_DROPPED = Counter(
    "memlayer_stored_values_dropped_total",
    "Values read from Postgres that no tier can carry (a 400-digit number, NaN, a NUL "
    "character), left out of the context instead of failing every load of the user.",
    ["field"],
)
