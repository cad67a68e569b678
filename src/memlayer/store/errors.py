"""Typed errors of the LangGraph store.

Namespaces refused by LangGraph's own rules raise LangGraph's ``InvalidNamespaceError`` (a
``ValueError``), exactly as its ``BaseStore`` methods do; everything else the store refuses
or cannot do is one of these. Bad input is always a ``ValueError`` too, so code written
against ``InMemoryStore`` keeps catching what it caught.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error memlayer's store raises on purpose."""


class InvalidValue(StoreError, ValueError):
    """An item value that is not strict JSON (NaN, a non-string key, a lone surrogate...)."""


class InvalidFilter(StoreError, ValueError):
    """A search filter the store cannot answer exactly (unknown operator, bad operand)."""


class InvalidOperation(StoreError, ValueError):
    """An op whose arguments are out of range (negative limit, a TTL that is not positive)."""


class VectorSearchUnsupported(StoreError, NotImplementedError):
    """Semantic search (an ``index`` config or a search ``query``) is not part of this store."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: memlayer's store has no vector search. Search with `filter` (exact "
            "match and $eq/$ne/$gt/$gte/$lt/$lte) instead, or use a vector-capable store "
            "for semantic search."
        )


class StoreNotMigrated(StoreError):
    """The database lacks the store's tables."""

    def __init__(self, url: str) -> None:
        super().__init__(
            f"the store's tables are missing in {url}: run `memlayer migrate` "
            "(or `alembic upgrade head`) against this database first"
        )


class StoreUnavailable(StoreError):
    """The database could not be reached or answered in time; a write was NOT acknowledged."""


class StoreClosed(StoreError):
    """The store was used after its ``open_store`` block ended."""


class StoreWriteOutcomeUnknown(StoreUnavailable):
    """The connection failed during COMMIT: the write may or may not have been saved.

    Retrying is safe: puts are idempotent (the same value again), and so are deletes.
    ``outcome`` is what the write was about to commit (the cache is told to distrust
    those namespaces until it knows).
    """

    def __init__(self, outcome: object) -> None:
        super().__init__(
            "the database connection failed while committing: the write may or may not "
            "have been saved. Retrying it is safe (puts and deletes are idempotent)"
        )
        self.outcome = outcome
