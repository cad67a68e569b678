"""memlayer's own decisions where the interface leaves room: the search order, bad input
refused with typed errors (all ValueErrors), vector search refused, the sync bridge."""

from __future__ import annotations

import asyncio
import math

import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, PutOp, SearchOp

from memlayer.store import (
    InvalidFilter,
    InvalidOperation,
    InvalidValue,
    MemlayerStore,
    StoreClosed,
    VectorSearchUnsupported,
)
from tests.support.store import OpenStore


async def test_a_plain_search_is_newest_first(store: MemlayerStore) -> None:
    for key in ("a", "b", "c"):
        await store.aput(("o",), key, {"v": 1})
    assert [i.key for i in await store.asearch(("o",))] == ["c", "b", "a"]
    await store.aput(("o",), "a", {"v": 2})
    assert [i.key for i in await store.asearch(("o",))] == ["a", "c", "b"]


async def test_items_of_one_batch_share_a_timestamp_and_sort_by_namespace_then_key(
    store: MemlayerStore,
) -> None:
    await store.abatch([PutOp(("o", "z"), "a", {}), PutOp(("o",), "y", {}), PutOp(("o",), "x", {})])
    found = await store.asearch(("o",))
    assert [(i.namespace, i.key) for i in found] == [
        (("o",), "x"),
        (("o",), "y"),
        (("o", "z"), "a"),
    ]
    assert len({i.updated_at for i in found}) == 1


@pytest.mark.parametrize(
    "value",
    [
        {"v": math.nan},
        {"v": math.inf},
        {1: "int key"},
        {"v": {2: "nested int key"}},
        {"v": "\ud800"},
        {"v": b"bytes"},
        {"v": {1, 2}},
        {"v": object()},
    ],
    ids=["nan", "inf", "int-key", "nested-int-key", "lone-surrogate", "bytes", "set", "object"],
)
async def test_values_that_are_not_strict_json_are_refused(store: MemlayerStore, value) -> None:
    with pytest.raises(InvalidValue):
        await store.aput(("v",), "k", value)
    assert await store.alist_namespaces() == []


async def test_tuples_are_json_arrays(store: MemlayerStore) -> None:
    await store.aput(("v",), "k", {"t": (1, (2, "x"))})
    item = await store.aget(("v",), "k")
    assert item is not None and item.value == {"t": [1, [2, "x"]]}


@pytest.mark.parametrize(
    "search_filter",
    [
        {"v": {"$in": [1]}},
        {"v": {"$gt": 1, "plain": 2}},
        {"v": {"$gt": None}},
        {"v": {"$lt": [1]}},
        {"v": {"$gte": True}},
        {"v": math.nan},
    ],
    ids=["unknown-op", "mixed", "null-operand", "list-operand", "bool-operand", "nan"],
)
async def test_filters_the_store_cannot_answer_exactly_are_refused(
    store: MemlayerStore, search_filter
) -> None:
    with pytest.raises(InvalidFilter):
        await store.asearch(("v",), filter=search_filter)


async def test_string_comparisons_are_by_code_point(store: MemlayerStore) -> None:
    for key, day in {"a": "2026-01-05", "b": "2026-02-01", "c": "2025-12-31"}.items():
        await store.aput(("d",), key, {"day": day})
    await store.aput(("d",), "n", {"day": 20260101})
    found = await store.asearch(("d",), filter={"day": {"$gte": "2026-01-01"}})
    assert sorted(i.key for i in found) == ["a", "b"]


@pytest.mark.parametrize(
    "op",
    [
        SearchOp(("s",), limit=-1),
        SearchOp(("s",), offset=-1),
        ListNamespacesOp(limit=-1),
        ListNamespacesOp(max_depth=-1),
        GetOp(("s",), 5),  # type: ignore[arg-type]
        GetOp(("s",), "nul\x00key"),
        PutOp(("s",), "k", {"v": 1}, ttl=-5),
    ],
    ids=[
        "negative-limit",
        "negative-offset",
        "list-limit",
        "max-depth",
        "int-key",
        "nul-key",
        "ttl",
    ],
)
async def test_out_of_range_arguments_are_refused(store: MemlayerStore, op) -> None:
    with pytest.raises(InvalidOperation):
        await store.abatch([op])


async def test_vector_search_is_refused_with_a_typed_error(
    store: MemlayerStore, open_pg_store: OpenStore
) -> None:
    with pytest.raises(VectorSearchUnsupported, match="no vector search"):
        await store.asearch(("s",), query="apartments near the river")
    assert isinstance(VectorSearchUnsupported("x"), NotImplementedError)
    from memlayer.store import open_store

    with pytest.raises(VectorSearchUnsupported, match="index"):
        async with open_store(index={"dims": 3, "embed": lambda texts: [[0.0] * 3]}):
            pass


async def test_sync_calls_from_the_stores_own_loop_are_refused(store: MemlayerStore) -> None:
    with pytest.raises(asyncio.InvalidStateError, match="async methods"):
        store.get(("s",), "k")


async def test_the_store_refuses_work_after_its_block_ends(open_pg_store: OpenStore) -> None:
    async with open_pg_store() as store:
        await store.aput(("s",), "k", {"v": 1})
    with pytest.raises(StoreClosed):
        await store.aget(("s",), "k")
    with pytest.raises(StoreClosed):
        await asyncio.to_thread(store.get, ("s",), "k")
