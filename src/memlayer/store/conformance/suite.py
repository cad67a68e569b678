"""The conformance suite: tests of LangGraph's ``BaseStore`` contract, for any store.

Each test states one behaviour that the interface documents (``langgraph.store.base``), or
that strict JSON implies where the interface says "JSON" (values and filters). Where
``InMemoryStore``, the reference, departs from strict JSON, the test says so in its
docstring and the reference's own run marks it as an expected failure.

Subclass in a module whose name pytest collects, and give it a ``store`` fixture that
yields an EMPTY store (see ``memlayer.store.conformance``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import pytest
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
)

from memlayer.store.conformance.jsonstrict import assert_same_json

pytestmark = pytest.mark.asyncio


class _Kit:
    """Shared machinery: the ``store`` fixture to override, and expected failures."""

    #: test function name -> why this store is expected to fail it (strict xfail, so a
    #: fix upstream turns the run red until the entry is removed).
    expected_failures: ClassVar[Mapping[str, str]] = {}

    @pytest.fixture
    async def store(self) -> AsyncIterator[BaseStore]:
        raise NotImplementedError(
            "override the `store` fixture in your subclass: it must yield an EMPTY store"
        )
        yield  # pragma: no cover

    @pytest.fixture(autouse=True)
    def _kit_expected_failure(self, request: pytest.FixtureRequest) -> None:
        reason = self.expected_failures.get(request.function.__name__)
        if reason is not None:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))

    async def settle(self, store: BaseStore) -> None:
        """Let background work that follows reads finish (e.g. TTL refreshes written
        off the read path). Override when your store has such work; the default waits
        for nothing."""


async def _keys(store: BaseStore, prefix: tuple[str, ...], **kwargs: Any) -> list[str]:
    return [item.key for item in await store.asearch(prefix, limit=1000, **kwargs)]


async def _key_set(store: BaseStore, prefix: tuple[str, ...], **kwargs: Any) -> set[str]:
    return set(await _keys(store, prefix, **kwargs))


class StoreConformance(_Kit):
    """The interface: items, namespaces, search, filters, listings, batches."""

    # --- items -----------------------------------------------------------------------

    async def test_get_of_a_missing_item_is_none(self, store: BaseStore) -> None:
        assert await store.aget(("docs",), "nothing") is None

    async def test_put_then_get_returns_the_item(self, store: BaseStore) -> None:
        await store.aput(("docs", "user1"), "report", {"title": "Q3", "pages": 12})
        item = await store.aget(("docs", "user1"), "report")
        assert isinstance(item, Item)
        assert item.namespace == ("docs", "user1")
        assert item.key == "report"
        assert_same_json(item.value, {"title": "Q3", "pages": 12})
        assert isinstance(item.created_at, datetime) and item.created_at.tzinfo is not None
        assert isinstance(item.updated_at, datetime) and item.updated_at.tzinfo is not None

    async def test_put_replaces_the_whole_value(self, store: BaseStore) -> None:
        await store.aput(("docs",), "a", {"x": 1, "y": 2})
        await store.aput(("docs",), "a", {"x": 3})
        item = await store.aget(("docs",), "a")
        assert item is not None
        assert_same_json(item.value, {"x": 3})

    async def test_update_keeps_created_at_and_moves_updated_at(self, store: BaseStore) -> None:
        """``created_at`` is the item's creation time (the interface's words)."""
        await store.aput(("docs",), "a", {"v": 1})
        first = await store.aget(("docs",), "a")
        await store.aput(("docs",), "a", {"v": 2})
        second = await store.aget(("docs",), "a")
        assert first is not None and second is not None
        assert second.created_at == first.created_at
        assert second.updated_at >= first.updated_at
        assert second.updated_at >= second.created_at

    async def test_delete_removes_the_item_and_deleting_nothing_is_fine(
        self, store: BaseStore
    ) -> None:
        await store.aput(("docs",), "a", {"v": 1})
        await store.adelete(("docs",), "a")
        await store.adelete(("docs",), "a")
        await store.adelete(("elsewhere",), "never-was")
        assert await store.aget(("docs",), "a") is None
        assert await _keys(store, ("docs",)) == []

    async def test_a_deleted_item_can_be_put_again(self, store: BaseStore) -> None:
        await store.aput(("docs",), "a", {"v": 1})
        await store.adelete(("docs",), "a")
        await store.aput(("docs",), "a", {"v": 2})
        item = await store.aget(("docs",), "a")
        assert item is not None
        assert_same_json(item.value, {"v": 2})

    async def test_values_round_trip_as_the_same_json(self, store: BaseStore) -> None:
        """Booleans stay booleans, integers stay exact at any size, floats stay floats."""
        value: dict[str, Any] = {
            "true": True,
            "false": False,
            "null": None,
            "int": 1,
            "float": 1.0,
            "big": 2**64 + 1,
            "negative_big": -(2**70) - 3,
            "beyond_doubles": 9007199254740993,
            "large_float": 1e16,
            "small_float": 1e-7,
            "tenth": 0.1,
            "text": 'héllo 사용자 😀 \u2028 \t "quoted" back\\slash',
            "empty_list": [],
            "empty_object": {},
            "nested": {"list": [1, 1.0, True, None, "1", {"deep": [[]]}]},
        }
        await store.aput(("json",), "k", value)
        item = await store.aget(("json",), "k")
        assert item is not None
        assert_same_json(item.value, value)

    async def test_strings_may_hold_nul_characters(self, store: BaseStore) -> None:
        """``"a\\u0000b"`` is a JSON string like any other."""
        value = {"nul": "a\x00b", "nested": ["\x00"]}
        await store.aput(("json",), "nul", value)
        item = await store.aget(("json",), "nul")
        assert item is not None
        assert_same_json(item.value, value)
        found = await store.asearch(("json",), filter={"nul": "a\x00b"})
        assert [i.key for i in found] == ["nul"]

    async def test_values_are_copied_not_aliased(self, store: BaseStore) -> None:
        """What was put is stored; later changes to the caller's dict, or to a value the
        store returned, do not change the stored item."""
        value: dict[str, Any] = {"tags": ["a"], "meta": {"n": 1}}
        await store.aput(("docs",), "a", value)
        value["tags"].append("b")
        value["meta"]["n"] = 2
        got = await store.aget(("docs",), "a")
        assert got is not None
        got.value["tags"].append("c")
        again = await store.aget(("docs",), "a")
        assert again is not None
        assert_same_json(again.value, {"tags": ["a"], "meta": {"n": 1}})

    async def test_sync_methods_work_from_a_worker_thread(self, store: BaseStore) -> None:
        await asyncio.to_thread(store.put, ("sync",), "a", {"v": 1})
        item = await asyncio.to_thread(store.get, ("sync",), "a")
        assert item is not None
        assert_same_json(item.value, {"v": 1})
        found = await asyncio.to_thread(store.search, ("sync",))
        assert [i.key for i in found] == ["a"]
        assert await asyncio.to_thread(store.list_namespaces) == [("sync",)]
        await asyncio.to_thread(store.delete, ("sync",), "a")
        assert await store.aget(("sync",), "a") is None

    # --- batches ---------------------------------------------------------------------

    async def test_batch_answers_each_op_in_order(self, store: BaseStore) -> None:
        await store.aput(("b",), "x", {"v": 1})
        results = await store.abatch(
            [
                GetOp(("b",), "x"),
                GetOp(("b",), "missing"),
                SearchOp(("b",)),
                ListNamespacesOp(),
                PutOp(("b",), "y", {"v": 2}),
            ]
        )
        assert len(results) == 5
        assert isinstance(results[0], Item) and results[0].key == "x"
        assert results[1] is None
        assert [i.key for i in results[2]] == ["x"]  # type: ignore[union-attr]
        assert results[3] == [("b",)]
        assert results[4] is None
        assert await store.aget(("b",), "y") is not None

    async def test_the_last_put_of_a_key_in_a_batch_wins(self, store: BaseStore) -> None:
        await store.abatch(
            [
                PutOp(("b",), "k", {"v": 1}),
                PutOp(("b",), "k", {"v": 2}),
                PutOp(("b",), "gone", {"v": 1}),
                PutOp(("b",), "gone", None),
            ]
        )
        item = await store.aget(("b",), "k")
        assert item is not None
        assert_same_json(item.value, {"v": 2})
        assert await store.aget(("b",), "gone") is None

    async def test_ops_handed_to_batch_with_invalid_namespaces_are_refused(
        self, store: BaseStore
    ) -> None:
        """``validate_op_namespace``: a label with a period must not address a namespace."""
        with pytest.raises(ValueError):
            await store.abatch([PutOp(("a.b",), "k", {"v": 1})])
        with pytest.raises(ValueError):
            await store.abatch([GetOp(("a.b",), "k")])
        assert await store.alist_namespaces() == []

    # --- namespaces ------------------------------------------------------------------

    @pytest.mark.parametrize(
        "namespace",
        [(), ("langgraph",), ("langgraph", "x"), ("a.b",), ("",), ("ok", "")],
        ids=["empty", "langgraph-root", "langgraph-deep", "period", "empty-label", "empty-2nd"],
    )
    async def test_invalid_namespaces_are_refused_with_value_error(
        self, store: BaseStore, namespace: tuple[str, ...]
    ) -> None:
        with pytest.raises(ValueError):
            await store.aput(namespace, "k", {"v": 1})
        assert await store.alist_namespaces() == []

    async def test_labels_must_be_strings(self, store: BaseStore) -> None:
        with pytest.raises(ValueError):
            await store.aput(("a", 1), "k", {"v": 1})  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await store.asearch(("a.b",))
        with pytest.raises(ValueError):
            await store.alist_namespaces(prefix=("a.b",))

    async def test_prefixes_match_whole_labels(self, store: BaseStore) -> None:
        for ns in [
            ("users", "john"),
            ("users", "john", "notes"),
            ("users", "johnny"),
            ("users", "john-doe"),
            ("users", "joh"),
        ]:
            await store.aput(ns, "k", {"ns": list(ns)})
        found = await store.asearch(("users", "john"), limit=100)
        assert sorted(i.namespace for i in found) == [("users", "john"), ("users", "john", "notes")]

    async def test_percent_underscore_and_star_in_labels_are_literal(
        self, store: BaseStore
    ) -> None:
        namespaces = [("u_1",), ("uX1",), ("u%",), ("uab",), ("*",), ("a*",), ("ab",), ("u_1x",)]
        for ns in namespaces:
            await store.aput(ns, "k", {"v": 1})
        for ns in namespaces:
            found = await store.asearch(ns, limit=100)
            assert [i.namespace for i in found] == [ns], ns
        listed = await store.alist_namespaces(prefix=("u_1",))
        assert listed == [("u_1",)]
        assert await store.alist_namespaces(prefix=("u%",)) == [("u%",)]

    async def test_unicode_long_and_deep_namespaces(self, store: BaseStore) -> None:
        namespaces = [
            ("사용자", "기억"),
            ("😀", "🎉"),
            ("x" * 500,),
            tuple(f"level{i}" for i in range(20)),
        ]
        for ns in namespaces:
            await store.aput(ns, "k", {"v": 1})
        for ns in namespaces:
            item = await store.aget(ns, "k")
            assert item is not None and item.namespace == ns
        assert sorted(await store.alist_namespaces(limit=100)) == sorted(namespaces)
        deep = await store.asearch(("level0", "level1"), limit=10)
        assert [i.namespace for i in deep] == [namespaces[3]]

    async def test_the_empty_prefix_searches_everything(self, store: BaseStore) -> None:
        await store.aput(("a",), "1", {"v": 1})
        await store.aput(("b", "c"), "2", {"v": 2})
        assert await _key_set(store, ()) == {"1", "2"}

    # --- search: pages -----------------------------------------------------------------

    async def test_search_returns_search_items(self, store: BaseStore) -> None:
        await store.aput(("s",), "a", {"v": 1})
        [found] = await store.asearch(("s",))
        assert isinstance(found, SearchItem)
        assert found.namespace == ("s",) and found.key == "a"
        assert_same_json(found.value, {"v": 1})
        assert found.score is None

    async def test_limit_zero_returns_nothing(self, store: BaseStore) -> None:
        await store.aput(("s",), "a", {"v": 1})
        assert await store.asearch(("s",), limit=0) == []
        assert await store.asearch(("s",), filter={"v": 1}, limit=0) == []

    async def test_limit_and_offset_count_items(self, store: BaseStore) -> None:
        for i in range(7):
            await store.aput(("s",), f"k{i}", {"i": i, "even": i % 2 == 0})
        assert len(await store.asearch(("s",), limit=3)) == 3
        assert len(await store.asearch(("s",), limit=3, offset=5)) == 2
        assert await store.asearch(("s",), limit=3, offset=7) == []
        assert len(await store.asearch(("s",), filter={"even": True}, limit=2, offset=3)) == 1

    async def test_offset_pages_partition_the_results(self, store: BaseStore) -> None:
        for i in range(11):
            await store.aput(("p", str(i % 3)), f"k{i}", {"i": i, "kind": "x"})
        for search_filter in (None, {"kind": "x"}):
            whole = await _keys(store, ("p",), filter=search_filter)
            paged: list[str] = []
            for offset in range(0, 12, 4):
                page = await store.asearch(("p",), filter=search_filter, limit=4, offset=offset)
                paged.extend(i.key for i in page)
            assert paged == whole
            assert sorted(whole) == sorted(f"k{i}" for i in range(11))

    async def test_offset_pages_partition_items_written_together(self, store: BaseStore) -> None:
        """Items put by one batch may share a timestamp: the order must still be total."""
        await store.abatch([PutOp(("p",), f"k{i:02d}", {"i": i}) for i in range(12)])
        whole = await _keys(store, ("p",))
        paged: list[str] = []
        for offset in (0, 5, 10):
            paged.extend(i.key for i in await store.asearch(("p",), limit=5, offset=offset))
        assert paged == whole
        assert sorted(whole) == [f"k{i:02d}" for i in range(12)]

    # --- search: filters ---------------------------------------------------------------

    async def test_filter_equality_on_several_fields(self, store: BaseStore) -> None:
        await store.aput(("f",), "a", {"color": "red", "size": 1})
        await store.aput(("f",), "b", {"color": "red", "size": 2})
        await store.aput(("f",), "c", {"color": "blue", "size": 1})
        assert await _key_set(store, ("f",), filter={"color": "red"}) == {"a", "b"}
        assert await _key_set(store, ("f",), filter={"color": "red", "size": 1}) == {"a"}
        assert await _key_set(store, ("f",), filter={"color": {"$eq": "blue"}}) == {"c"}
        assert await _key_set(store, ("f",), filter={"color": "green"}) == set()

    async def test_filter_on_a_nested_object_matches_the_keys_it_names(
        self, store: BaseStore
    ) -> None:
        await store.aput(("f",), "a", {"meta": {"lang": "ko", "v": 1}})
        await store.aput(("f",), "b", {"meta": {"lang": "en", "v": 1}})
        await store.aput(("f",), "c", {"meta": "ko"})
        assert await _key_set(store, ("f",), filter={"meta": {"lang": "ko"}}) == {"a"}
        assert await _key_set(store, ("f",), filter={"meta": {"lang": "ko", "v": 1}}) == {"a"}
        assert await _key_set(store, ("f",), filter={"meta": {"v": 1}}) == {"a", "b"}

    async def test_filter_with_an_operator_inside_a_nested_object(self, store: BaseStore) -> None:
        await store.aput(("f",), "a", {"meta": {"score": 5}})
        await store.aput(("f",), "b", {"meta": {"score": 1}})
        assert await _key_set(store, ("f",), filter={"meta": {"score": {"$gt": 2}}}) == {"a"}

    async def test_filter_on_a_list_matches_the_whole_list_in_order(self, store: BaseStore) -> None:
        await store.aput(("f",), "a", {"tags": ["x", "y"]})
        await store.aput(("f",), "b", {"tags": ["y", "x"]})
        await store.aput(("f",), "c", {"tags": ["x", "y", "z"]})
        assert await _key_set(store, ("f",), filter={"tags": ["x", "y"]}) == {"a"}

    async def test_filter_true_is_not_one(self, store: BaseStore) -> None:
        """Strict JSON: a boolean never equals a number."""
        await store.aput(("f",), "bool", {"v": True})
        await store.aput(("f",), "int", {"v": 1})
        assert await _key_set(store, ("f",), filter={"v": 1}) == {"int"}
        assert await _key_set(store, ("f",), filter={"v": True}) == {"bool"}

    async def test_filter_one_is_not_one_point_zero(self, store: BaseStore) -> None:
        """Strict JSON: an integer and a float are different values."""
        await store.aput(("f",), "int", {"v": 1})
        await store.aput(("f",), "float", {"v": 1.0})
        assert await _key_set(store, ("f",), filter={"v": 1}) == {"int"}
        assert await _key_set(store, ("f",), filter={"v": 1.0}) == {"float"}

    async def test_filter_integers_beyond_2_53_compare_exactly(self, store: BaseStore) -> None:
        await store.aput(("f",), "a", {"v": 2**53})
        await store.aput(("f",), "b", {"v": 2**53 + 1})
        assert await _key_set(store, ("f",), filter={"v": 2**53 + 1}) == {"b"}
        assert await _key_set(store, ("f",), filter={"v": {"$gt": 2**53}}) == {"b"}
        assert await _key_set(store, ("f",), filter={"v": {"$lte": 2**53}}) == {"a"}

    async def test_filter_null_does_not_match_a_missing_field(self, store: BaseStore) -> None:
        """Strict JSON: a member that is absent is not a member whose value is null."""
        await store.aput(("f",), "null", {"v": None})
        await store.aput(("f",), "missing", {"w": 1})
        assert await _key_set(store, ("f",), filter={"v": None}) == {"null"}

    async def test_ne_matches_items_that_lack_the_field(self, store: BaseStore) -> None:
        await store.aput(("f",), "red", {"color": "red"})
        await store.aput(("f",), "blue", {"color": "blue"})
        await store.aput(("f",), "none", {"size": 3})
        assert await _key_set(store, ("f",), filter={"color": {"$ne": "red"}}) == {"blue", "none"}

    async def test_comparisons_are_numeric(self, store: BaseStore) -> None:
        for key, score in {"nine": 9, "ten": 10, "hundred": 100, "half": 2.5}.items():
            await store.aput(("f",), key, {"score": score})
        assert await _key_set(store, ("f",), filter={"score": {"$gt": 9}}) == {"ten", "hundred"}
        assert await _key_set(store, ("f",), filter={"score": {"$gte": 9}}) == {
            "nine",
            "ten",
            "hundred",
        }
        assert await _key_set(store, ("f",), filter={"score": {"$lt": 10}}) == {"nine", "half"}
        assert await _key_set(store, ("f",), filter={"score": {"$lte": 2.5}}) == {"half"}
        assert await _key_set(store, ("f",), filter={"score": {"$gt": 2.4, "$lt": 9.5}}) == {
            "nine",
            "half",
        }

    async def test_comparisons_skip_items_whose_field_is_missing_or_not_a_number(
        self, store: BaseStore
    ) -> None:
        await store.aput(("f",), "number", {"n": 5})
        await store.aput(("f",), "missing", {"m": 5})
        await store.aput(("f",), "text", {"n": "7"})
        await store.aput(("f",), "boolean", {"n": True})
        await store.aput(("f",), "null", {"n": None})
        assert await _key_set(store, ("f",), filter={"n": {"$gt": 0}}) == {"number"}

    async def test_unknown_operators_are_refused_with_value_error(self, store: BaseStore) -> None:
        await store.aput(("f",), "a", {"v": 1})
        with pytest.raises(ValueError):
            await store.asearch(("f",), filter={"v": {"$in": [1]}})

    # --- listing namespaces ------------------------------------------------------------

    async def _namespaces(self, store: BaseStore, namespaces: Sequence[tuple[str, ...]]) -> None:
        for ns in namespaces:
            await store.aput(ns, "k", {"v": 1})

    async def test_list_namespaces_is_sorted(self, store: BaseStore) -> None:
        namespaces = [("b",), ("a", "z"), ("a",), ("a-c",), ("a", "b", "c")]
        await self._namespaces(store, namespaces)
        assert await store.alist_namespaces() == sorted(namespaces)

    async def test_max_depth_truncates_and_deduplicates(self, store: BaseStore) -> None:
        """The example in ``BaseStore.list_namespaces``' docstring."""
        await self._namespaces(
            store,
            [
                ("a", "b", "c"),
                ("a", "b", "d", "e"),
                ("a", "b", "d", "i"),
                ("a", "b", "f"),
                ("a", "c", "f"),
            ],
        )
        assert await store.alist_namespaces(prefix=("a", "b"), max_depth=3) == [
            ("a", "b", "c"),
            ("a", "b", "d"),
            ("a", "b", "f"),
        ]
        assert await store.alist_namespaces(max_depth=2) == [("a", "b"), ("a", "c")]

    async def test_prefix_and_suffix_conditions_with_wildcards(self, store: BaseStore) -> None:
        await self._namespaces(
            store,
            [
                ("users", "1", "memories"),
                ("users", "2", "memories"),
                ("users", "2", "profile"),
                ("teams", "1", "memories"),
                ("users",),
            ],
        )
        assert await store.alist_namespaces(suffix=("memories",)) == [
            ("teams", "1", "memories"),
            ("users", "1", "memories"),
            ("users", "2", "memories"),
        ]
        assert await store.alist_namespaces(prefix=("users", "*", "memories")) == [
            ("users", "1", "memories"),
            ("users", "2", "memories"),
        ]
        assert await store.alist_namespaces(prefix=("*", "1")) == [
            ("teams", "1", "memories"),
            ("users", "1", "memories"),
        ]
        assert await store.alist_namespaces(suffix=("2", "*")) == [
            ("users", "2", "memories"),
            ("users", "2", "profile"),
        ]
        assert await store.alist_namespaces(prefix=("users",), suffix=("profile",)) == [
            ("users", "2", "profile")
        ]
        ops = [
            ListNamespacesOp(
                match_conditions=(
                    MatchCondition("prefix", ("users",)),
                    MatchCondition("suffix", ("memories",)),
                ),
            )
        ]
        [listed] = await store.abatch(ops)
        assert listed == [("users", "1", "memories"), ("users", "2", "memories")]

    async def test_list_limit_and_offset(self, store: BaseStore) -> None:
        namespaces = [(f"n{i:02d}",) for i in range(9)]
        await self._namespaces(store, namespaces)
        assert await store.alist_namespaces(limit=4) == namespaces[:4]
        assert await store.alist_namespaces(limit=4, offset=4) == namespaces[4:8]
        assert await store.alist_namespaces(limit=4, offset=8) == namespaces[8:]
        assert await store.alist_namespaces(limit=0) == []

    async def test_a_namespace_without_items_is_not_listed(self, store: BaseStore) -> None:
        """A namespace exists while it holds an item: reading one, or deleting its last
        item, leaves nothing to list."""
        await store.aget(("read", "only"), "k")
        await store.aput(("emptied",), "k", {"v": 1})
        await store.adelete(("emptied",), "k")
        await store.adelete(("deleted", "only"), "k")
        await store.aput(("kept",), "k", {"v": 1})
        assert await store.alist_namespaces() == [("kept",)]

    # --- TTL support is declared honestly ----------------------------------------------

    async def test_ttl_is_refused_unless_supported(self, store: BaseStore) -> None:
        if store.supports_ttl:
            await store.aput(("t",), "k", {"v": 1}, ttl=60)
            assert await store.aget(("t",), "k") is not None
        else:
            with pytest.raises(NotImplementedError):
                await store.aput(("t",), "k", {"v": 1}, ttl=60)


class TTLConformance(_Kit):
    """TTLs, for stores with ``supports_ttl``. These tests wait for real time to pass (a few
    seconds in all): expiry is the behaviour under test, so the clock is the input."""

    #: TTLs used below, in minutes: short enough to wait out, long enough that a busy
    #: machine still reads an item before it expires.
    short_ttl: ClassVar[float] = 0.01  # 0.6 s
    refresh_ttl: ClassVar[float] = 0.05  # 3 s

    async def _until(self, start: float, seconds: float) -> None:
        delay = start + seconds - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # waiting for time itself, not for another task

    async def test_expired_items_are_never_returned(self, store: BaseStore) -> None:
        """Whether or not a sweep ran: not by get, search or listing."""
        start = time.monotonic()
        await store.aput(("t", "short"), "gone", {"v": 1}, ttl=self.short_ttl)
        await store.aput(("t", "long"), "kept", {"v": 1}, ttl=10)
        await store.aput(("t", "long"), "forever", {"v": 1}, ttl=None)
        await store.aput(("t", "long"), "cleared", {"v": 1}, ttl=self.short_ttl)
        await store.aput(("t", "long"), "cleared", {"v": 2}, ttl=None)
        assert await store.aget(("t", "short"), "gone") is not None
        await self._until(start, self.short_ttl * 60 + 0.4)
        assert await store.aget(("t", "short"), "gone", refresh_ttl=False) is None
        assert await _key_set(store, ("t",), refresh_ttl=False) == {"kept", "forever", "cleared"}
        assert await store.alist_namespaces(prefix=("t",)) == [("t", "long")]

    async def test_fractional_ttls_are_kept_and_reads_refresh_them(self, store: BaseStore) -> None:
        """A 3 s TTL (0.05 minutes) read after 2 s with refresh, by get or by search,
        outlives its first 3 s; one read without refresh does not. (A store that rounds
        0.05 minutes to 0 or to 1 fails one way or the other.)"""
        ttl_s = self.refresh_ttl * 60
        start = time.monotonic()
        await store.aput(("t", "g"), "by-get", {"v": 1}, ttl=self.refresh_ttl)
        await store.aput(("t", "s"), "by-search", {"kind": "x"}, ttl=self.refresh_ttl)
        await store.aput(("t", "g"), "not-refreshed", {"v": 1}, ttl=self.refresh_ttl)
        await self._until(start, ttl_s * 2 / 3)
        assert await store.aget(("t", "g"), "by-get", refresh_ttl=True) is not None
        found = await _keys(store, ("t", "s"), filter={"kind": "x"}, refresh_ttl=True)
        assert found == ["by-search"]
        assert await store.aget(("t", "g"), "not-refreshed", refresh_ttl=False) is not None
        await self.settle(store)
        await self._until(start, ttl_s * 7 / 6)
        assert await store.aget(("t", "g"), "by-get", refresh_ttl=False) is not None
        assert await _keys(store, ("t", "s"), refresh_ttl=False) == ["by-search"]
        assert await store.aget(("t", "g"), "not-refreshed", refresh_ttl=False) is None
