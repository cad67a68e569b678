"""memlayer's LangGraph store: ``BaseStore`` with Postgres (or embedded SQLite) as the truth.

    async with open_store() as store:            # MEMLAYER_* settings, like the service
        graph = builder.compile(store=store)      # nodes use runtime.store

Semantics are ``InMemoryStore``'s with JSON compared strictly (filters.py), namespaces
matched on whole labels (namespaces.py), a stated search order (store.py) and TTLs that are
exact, never served expired, and refreshed without turning reads into writes (ttl.py).
``memlayer.store.conformance`` is the test kit any ``BaseStore`` can run.

Versions, for the cache tier to come (phase 2: the Redis tier in front of these tables)
------------------------------------------------------------------------------------------
The Redis tier will cache ``get`` results per item and ``search`` results per (prefix,
filter, page), with the protocol the memory contexts use: versioned set-if-newer fills,
single-flight + lease, breaker, durable invalidation. Its versions come from
``store_namespaces`` (schema.py), bumped inside every write transaction (``write()`` in
repository.py, which owns that transaction; the outbox row will be written there too):

- ``version(N)``: +1 by every transaction that puts or deletes in namespace ``N``, under the
  row lock of ``N``, so one namespace's versions are in commit order. A cached item of
  ``N`` (or its absence: a tombstone) is stamped with the ``version(N)`` read in the same
  snapshot as the item, and a fill is installed only if Redis holds nothing newer for it;
  a writer installs its items (or tombstones) at the version its ``UPDATE .. RETURNING``
  gave it (``WriteOutcome.versions``).
- ``tree_version(P)``: +1 on ``P`` and each of its ancestors (the root ``""`` included)
  whenever a namespace row is created at or below ``P``, i.e. when the set of namespaces a
  search under ``P`` covers grows. Rows are never deleted, so the set never shrinks and no
  version ever starts over (an emptied namespace keeps its row and its version).
- A cached search under prefix ``P`` therefore carries ``tree_version(P)`` and the
  ``version`` of every namespace under ``P`` (all read in the fill's snapshot). It is valid
  while Redis' per-namespace version keys and ``P``'s tree version key still equal those:
  a write anywhere under ``P`` bumps one namespace's version, a new namespace under ``P``
  bumps ``tree_version(P)``. Writers bump only their own namespace rows (no hot ancestor
  row on every write; ancestors are locked only when a namespace is created), and searches
  over prefixes with very many namespaces are better left uncached (a bound in phase 2).
- Expiry changes what reads see without a write: cached values carry ``expires_at`` and
  are filtered by it on the way out; a cached search page stays valid only until the
  earliest expiry among the items it returned or skipped. TTL refreshes and sweeps do not
  bump versions (nothing visible changes).
"""

from memlayer.store.errors import (
    InvalidFilter,
    InvalidOperation,
    InvalidValue,
    StoreClosed,
    StoreError,
    StoreNotMigrated,
    StoreUnavailable,
    StoreWriteOutcomeUnknown,
    VectorSearchUnsupported,
)
from memlayer.store.factory import open_store
from memlayer.store.store import MemlayerStore

__all__ = [
    "InvalidFilter",
    "InvalidOperation",
    "InvalidValue",
    "MemlayerStore",
    "StoreClosed",
    "StoreError",
    "StoreNotMigrated",
    "StoreUnavailable",
    "StoreWriteOutcomeUnknown",
    "VectorSearchUnsupported",
    "open_store",
]
