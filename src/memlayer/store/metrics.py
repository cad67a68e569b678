"""Prometheus metrics of the LangGraph store (default registry, served at /metrics).

The cache protocol's own counters (fills, lease waits, corrupt values, the breaker) are
the cache tier's and count every key family; these say how the store's reads were
answered and what they cost Postgres.
"""

from __future__ import annotations

from prometheus_client import Counter

STATEMENTS = Counter(
    "memlayer_store_db_statements_total",
    "SQL statements the store sent, by kind: read (gets and searches Postgres answered), "
    "load (cache fills), replica_load, read_back (a write's new values for the cache), "
    "list, write, ttl_refresh, sweep.",
    ["op"],
)
READS = Counter(
    "memlayer_store_reads_total",
    "Store gets and searches by what answered them: namespace (a namespace's value: a "
    "Redis hit, a fill, or a load while Redis is bypassed; see "
    "memlayer_store_cache_lookups_total), database (a statement of its own; see "
    "memlayer_store_uncached_reads_total).",
    ["op", "answer"],
)
UNCACHED = Counter(
    "memlayer_store_uncached_reads_total",
    "Gets and searches sent to Postgres as statements of their own, by why: descendants "
    "(a search over a prefix with namespaces below it), over_cap (a namespace above the "
    "cache's size cap), root (a search of every namespace), disabled (no cache tier).",
    ["reason"],
)
NAMESPACE_LOADS = Counter(
    "memlayer_store_cache_lookups_total",
    "Namespaces looked up by result: near (the process's near-cache held a valid value: "
    "no round trip), hit (Redis held a valid value), miss (filled "
    "through the lease protocol), bypass (loaded from Postgres without Redis: breaker "
    "open, Redis error, or a namespace written while Redis could not be told).",
    ["result"],
)
REPLICA_DISCARDED = Counter(
    "memlayer_store_replica_discarded_total",
    "Namespaces read from the replica older than a version this process knew of; "
    "re-read on the primary.",
)

GET_CACHE = READS.labels("get", "namespace")
GET_DATABASE = READS.labels("get", "database")
SEARCH_CACHE = READS.labels("search", "namespace")
SEARCH_DATABASE = READS.labels("search", "database")
LOOKUP_NEAR = NAMESPACE_LOADS.labels("near")
LOOKUP_HIT = NAMESPACE_LOADS.labels("hit")
LOOKUP_MISS = NAMESPACE_LOADS.labels("miss")
LOOKUP_BYPASS = NAMESPACE_LOADS.labels("bypass")
UNCACHED_DESCENDANTS = UNCACHED.labels("descendants")
UNCACHED_OVER_CAP = UNCACHED.labels("over_cap")
UNCACHED_ROOT = UNCACHED.labels("root")
UNCACHED_DISABLED = UNCACHED.labels("disabled")
