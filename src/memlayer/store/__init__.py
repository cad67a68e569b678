"""memlayer's LangGraph store: ``BaseStore`` with Postgres (or embedded SQLite) as the truth.

    async with open_store() as store:            # MEMLAYER_* settings, like the service
        graph = builder.compile(store=store)      # nodes use runtime.store

Semantics are ``InMemoryStore``'s with JSON compared strictly (filters.py), namespaces
matched on whole labels (namespaces.py), a stated search order (store.py) and TTLs that are
exact, never served expired, and refreshed without turning reads into writes (ttl.py).
``memlayer.store.conformance`` is the test kit any ``BaseStore`` can run.

The Redis tier in front of the tables (``namespace_cache``, ``cached_values``)
------------------------------------------------------------------------------
The cache unit is a namespace: one value holding its live items (up to a size cap) and
whether any namespace exists below it, at the combined version ``version + tree_version``
of its ``store_namespaces`` row (schema.py), both bumped inside every write transaction
(``write()`` in repository.py, which owns it and writes the outbox rows in the same
statement as the bump):

- ``version(N)``: +1 by every transaction that puts or deletes in namespace ``N``, under the
  row lock of ``N``, so one namespace's versions are in commit order.
- ``tree_version(P)``: +1 on ``P`` and each of its ancestors (the root ``""`` included)
  whenever a namespace row is created at or below ``P``. Rows are never deleted, so no
  version ever starts over (an emptied namespace keeps its row and its version).
- So the combined version strictly increases whenever what the namespace's value says
  changes: its items, or whether it has namespaces below it. Values are installed
  set-if-newer with the memory contexts' protocol; gets, and searches whose prefix is a
  namespace with nothing below it, are answered from them; the rest goes to Postgres.
- Expiry changes what reads see without a write: a value is valid only until the earliest
  ``expires_at`` among its items, then reloaded. TTL refreshes and sweeps bump nothing:
  they can only make a cached value expire early, never show an expired item.
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
