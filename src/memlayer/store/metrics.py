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
    "Store gets and searches by what answered them: cache (a cached namespace, hit or "
    "filled), database (Postgres directly; see memlayer_store_uncached_reads_total).",
    ["op", "answer"],
)
UNCACHED = Counter(
    "memlayer_store_uncached_reads_total",
    "Gets and searches sent to Postgres, by why: descendants (a search over a prefix "
    "with namespaces below it), over_cap (a namespace above the cache's size cap), root "
    "(a search of every namespace), bypass (breaker open, a namespace written while "
    "Redis could not be told, Redis error, or the cache is off).",
    ["reason"],
)
NAMESPACE_LOADS = Counter(
    "memlayer_store_cache_lookups_total",
    "Namespaces looked up in Redis by result: hit, miss (filled or loaded), bypass.",
    ["result"],
)
REPLICA_DISCARDED = Counter(
    "memlayer_store_replica_discarded_total",
    "Namespaces read from the replica older than a version this process knew of; "
    "re-read on the primary.",
)

GET_CACHE = READS.labels("get", "cache")
GET_DATABASE = READS.labels("get", "database")
SEARCH_CACHE = READS.labels("search", "cache")
SEARCH_DATABASE = READS.labels("search", "database")
LOOKUP_HIT = NAMESPACE_LOADS.labels("hit")
LOOKUP_MISS = NAMESPACE_LOADS.labels("miss")
LOOKUP_BYPASS = NAMESPACE_LOADS.labels("bypass")
UNCACHED_DESCENDANTS = UNCACHED.labels("descendants")
UNCACHED_OVER_CAP = UNCACHED.labels("over_cap")
UNCACHED_ROOT = UNCACHED.labels("root")
UNCACHED_BYPASS = UNCACHED.labels("bypass")
