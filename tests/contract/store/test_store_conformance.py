"""The conformance kit against five stores: the reference, memlayer's store on Postgres
(uncached, and cached: Postgres + Redis) and on the embedded SQLite (with its in-process
Redis stand-in), and the peer (``AsyncPostgresStore``).

Every expected failure below is a place where that store departs from the kit; the reason
says how. They are strict: if a store starts passing, the run fails until the entry goes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from langgraph.store.postgres import AsyncPostgresStore
from sqlalchemy.ext.asyncio import AsyncEngine

from memlayer.store import MemlayerStore
from memlayer.store.conformance import StoreConformance, TTLConformance
from tests.support.store import empty_memlayer_tables, empty_peer, reset_memlayer_store

# Where the reference departs from strict JSON or from the interface's own words. memlayer's
# store follows the kit on each; these are the reference's quirks, found by the kit.
REFERENCE_QUIRKS = {
    "test_update_keeps_created_at_and_moves_updated_at": (
        "InMemoryStore rebuilds the Item on every put, so created_at moves with updated_at"
    ),
    "test_values_are_copied_not_aliased": (
        "InMemoryStore keeps the caller's nested objects and hands out its own: a mutation "
        "on either side changes the stored item"
    ),
    "test_ops_handed_to_batch_with_invalid_namespaces_are_refused": (
        "InMemoryStore validates labels in put()/get()/search(), not in ops handed to batch()"
    ),
    "test_filter_true_is_not_one": "InMemoryStore compares with Python ==, where True == 1",
    "test_filter_one_is_not_one_point_zero": "InMemoryStore compares with Python ==: 1 == 1.0",
    "test_filter_integers_beyond_2_53_compare_exactly": (
        "InMemoryStore's $gt/$lte convert both sides to float: 2**53 + 1 > 2**53 is False"
    ),
    "test_filter_null_does_not_match_a_missing_field": (
        "InMemoryStore reads a missing field as None, so {'v': None} matches items without v"
    ),
    "test_comparisons_skip_items_whose_field_is_missing_or_not_a_number": (
        "InMemoryStore applies float() to the field: an item without it raises TypeError "
        "and fails the whole search; '7' and True compare as numbers"
    ),
    "test_a_namespace_without_items_is_not_listed": (
        "InMemoryStore lists namespaces that were only read, or whose items were all deleted "
        "(its defaultdict keeps an empty entry)"
    ),
}


class TestInMemoryStore(StoreConformance):
    expected_failures = REFERENCE_QUIRKS

    @pytest.fixture
    async def store(self) -> AsyncIterator[BaseStore]:
        yield InMemoryStore()


class _MemlayerKit(StoreConformance, TTLConformance):
    async def settle(self, store: BaseStore) -> None:
        assert isinstance(store, MemlayerStore)
        await store.flush_ttl_refreshes()


class TestMemlayerStorePostgres(_MemlayerKit):
    @pytest.fixture
    async def store(
        self, memlayer_pg_store: MemlayerStore, store_pg_engine: AsyncEngine
    ) -> AsyncIterator[BaseStore]:
        await empty_memlayer_tables(store_pg_engine)
        yield memlayer_pg_store


@pytest.mark.external
class TestMemlayerStoreCached(_MemlayerKit):
    """The production flavour: every read goes through the Redis tier first."""

    @pytest.fixture
    async def store(
        self, memlayer_cached_store: MemlayerStore, store_cached_engine: AsyncEngine
    ) -> AsyncIterator[BaseStore]:
        await reset_memlayer_store(memlayer_cached_store, store_cached_engine)
        yield memlayer_cached_store


class TestMemlayerStoreSQLite(_MemlayerKit):
    @pytest.fixture
    async def store(
        self, memlayer_sqlite_store: MemlayerStore, store_sqlite_engine: AsyncEngine
    ) -> AsyncIterator[BaseStore]:
        await reset_memlayer_store(memlayer_sqlite_store, store_sqlite_engine)
        yield memlayer_sqlite_store


EXPIRED_RETURNED = (
    "AsyncPostgresStore's omit_expired defaults to False: expired rows are returned until a "
    "sweep deletes them"
)
TTL_ROUNDED = (
    "AsyncPostgresStore keeps ttl_minutes in an INT column: 0.05 minutes is stored as 0, so "
    "a refresh on read sets expires_at to now() and the item expires at once"
)

# Where the peer departs from the kit (and from InMemoryStore), with why.
PEER_DIVERGENCES = {
    "test_values_round_trip_as_the_same_json": (
        "values are stored as jsonb: the float 1e16 comes back as the integer 10000000000000000"
    ),
    "test_strings_may_hold_nul_characters": (
        "values are stored as jsonb, which cannot hold \\u0000: the put fails with "
        "UntranslatableCharacter"
    ),
    "test_offset_pages_partition_items_written_together": (
        "a plain search orders by updated_at alone: rows written by one batch tie, and their "
        "order depends on LIMIT/OFFSET, so pages disagree with each other"
    ),
    "test_filter_on_a_nested_object_matches_the_keys_it_names": (
        "a dict in a filter is read as operators: nested-object filters raise "
        "ValueError('Unsupported operator: ...')"
    ),
    "test_filter_with_an_operator_inside_a_nested_object": (
        "a dict in a filter is read as operators: nested filters raise ValueError"
    ),
    "test_filter_one_is_not_one_point_zero": "jsonb equality says 1 = 1.0",
    "test_ne_matches_items_that_lack_the_field": (
        "$ne is SQL's !=, which is NULL, not true, for an item without the field"
    ),
    "test_comparisons_are_numeric": (
        "$gt/$gte/$lt/$lte compare the field's text with str(operand): '10' < '9'"
    ),
    "test_comparisons_skip_items_whose_field_is_missing_or_not_a_number": (
        "comparisons are on text: the string '7' and the boolean true ('true' > '0') match $gt 0"
    ),
    "test_list_namespaces_is_sorted": (
        "namespaces are sorted as dot-joined text, so ('a-c',) comes before ('a', 'b', 'c') "
        "('-' < '.'), unlike InMemoryStore's label-by-label order"
    ),
    "test_expired_items_are_never_returned": EXPIRED_RETURNED,
    "test_fractional_ttls_are_kept_and_reads_refresh_them": EXPIRED_RETURNED,
}

PEER_OMITTING_EXPIRED_DIVERGENCES = {
    "test_fractional_ttls_are_kept_and_reads_refresh_them": TTL_ROUNDED,
}


class TestAsyncPostgresStore(StoreConformance, TTLConformance):
    expected_failures = PEER_DIVERGENCES

    @pytest.fixture
    async def store(self, peer_store: AsyncPostgresStore) -> AsyncIterator[BaseStore]:
        await empty_peer(peer_store)
        yield peer_store


class TestAsyncPostgresStoreOmittingExpired(TTLConformance):
    """The peer with ``TTLConfig(omit_expired=True)``, its opt-in for hiding expired rows."""

    expected_failures = PEER_OMITTING_EXPIRED_DIVERGENCES

    @pytest.fixture
    async def store(
        self, peer_store_omitting_expired: AsyncPostgresStore
    ) -> AsyncIterator[BaseStore]:
        await empty_peer(peer_store_omitting_expired)
        yield peer_store_omitting_expired
