"""Ops of one batch share round trips: one statement for all gets and searches, one for
all listings, one transaction of at most four statements for all puts and deletes."""

from __future__ import annotations

import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp

from memlayer.store import InvalidValue, MemlayerStore
from tests.support.store import StatementLog


async def _seed(store: MemlayerStore) -> None:
    await store.abatch(
        [
            PutOp(("users", str(u), "mem"), f"k{i}", {"i": i, "kind": "note"})
            for u in range(3)
            for i in range(4)
        ]
    )


async def test_all_gets_and_searches_of_a_batch_are_one_statement(store: MemlayerStore) -> None:
    await _seed(store)
    ops = [
        GetOp(("users", "0", "mem"), "k1"),
        GetOp(("users", "1", "mem"), "k2"),
        GetOp(("users", "2", "mem"), "missing"),
        SearchOp(("users",), limit=3),
        SearchOp(("users", "1"), filter={"kind": "note"}, limit=2, offset=1),
        SearchOp(("users", "2"), filter={"i": {"$gte": 2}}),
    ]
    with StatementLog(store.repository.engine) as log:
        results = await store.abatch(ops)
    assert len(log.statements) == 1 and log.statements[0].startswith("SELECT")
    assert [r.key if r else None for r in results[:3]] == ["k1", "k2", None]
    assert len(results[3]) == 3
    assert len(results[4]) == 2
    assert sorted(i.key for i in results[5]) == ["k2", "k3"]


async def test_all_listings_of_a_batch_are_one_statement(store: MemlayerStore) -> None:
    await _seed(store)
    ops = [
        ListNamespacesOp(),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("users", "1")),)),
        ListNamespacesOp(match_conditions=(MatchCondition("suffix", ("mem",)),), max_depth=2),
    ]
    with StatementLog(store.repository.engine) as log:
        results = await store.abatch(ops)
    assert len(log.statements) == 1
    assert results[1] == [("users", "1", "mem")]
    assert results[2] == [("users", "0"), ("users", "1"), ("users", "2")]


async def test_puts_and_deletes_of_a_batch_are_one_transaction_of_four_statements(
    store: MemlayerStore,
) -> None:
    await _seed(store)
    ops = [PutOp(("users", str(u), "new"), f"k{i}", {"i": i}) for u in range(3) for i in range(5)]
    ops += [PutOp(("users", "0", "mem"), "k0", None), PutOp(("users", "1", "mem"), "k0", None)]
    with StatementLog(store.repository.engine) as log:
        await store.abatch(ops)
    verbs = [s.split(" ", 2)[:2] for s in log.statements]
    assert verbs == [
        ["INSERT", "INTO"],  # missing namespace rows
        ["WITH", "locked"],  # lock, bump versions
        ["INSERT", "INTO"],  # upsert items
        ["DELETE", "FROM"],  # deletes
    ], log.statements
    assert len(await store.asearch(("users",), limit=100)) == 12 - 2 + 15


async def test_a_search_sql_cannot_decide_reads_more_only_when_its_first_page_fell_short(
    store: MemlayerStore,
) -> None:
    """A numeric filter is finished in Python: the first statement reads a bounded page of
    candidates (64 at least); a second one runs only when that page held too few."""
    # One batch, one timestamp: the order is by key, so the items with i < 10 come last.
    await store.abatch([PutOp(("n",), f"k{199 - i:03d}", {"i": i}) for i in range(200)])
    with StatementLog(store.repository.engine) as log:
        found = await store.asearch(("n",), filter={"i": {"$lt": 10}}, limit=5)
    assert len(log.statements) == 2
    assert len(found) == 5
    with StatementLog(store.repository.engine) as log:
        found = await store.asearch(("n",), filter={"i": {"$gte": 0}}, limit=5)
    assert len(log.statements) == 1
    assert len(found) == 5


async def test_reads_of_a_batch_see_the_state_before_its_writes(store: MemlayerStore) -> None:
    """As in InMemoryStore: a batch's reads run first, then its writes."""
    await store.aput(("b",), "k", {"v": 1})
    results = await store.abatch(
        [PutOp(("b",), "k", {"v": 2}), GetOp(("b",), "k"), SearchOp(("b",))]
    )
    assert results[1].value == {"v": 1}
    assert [i.value for i in results[2]] == [{"v": 1}]
    item = await store.aget(("b",), "k")
    assert item is not None and item.value == {"v": 2}


async def test_a_batch_with_one_bad_op_sends_nothing_and_changes_nothing(
    store: MemlayerStore,
) -> None:
    with StatementLog(store.repository.engine) as log, pytest.raises(InvalidValue):
        await store.abatch(
            [PutOp(("b",), "good", {"v": 1}), PutOp(("b",), "bad", {"v": float("nan")})]
        )
    assert log.statements == []
    assert await store.aget(("b",), "good") is None
