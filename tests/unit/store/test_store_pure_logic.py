"""The store's pure logic: namespace text and ranges, strict JSON values, filter meaning and
which filters SQL may decide alone."""

from __future__ import annotations

import pytest
from langgraph.store.base import InvalidNamespaceError, ListNamespacesOp, MatchCondition

from memlayer.store import InvalidValue, namespaces, values
from memlayer.store.filters import compile_filter, json_equal


def test_a_prefix_range_holds_exactly_the_namespaces_below_it() -> None:
    lo, hi = namespaces.descendants_range("users.john")
    inside = ["users.john.notes", "users.john.x.y"]
    outside = ["users.john", "users.john-doe", "users.johnny", "users.joh", "users.john/x"]
    assert all(lo <= t < hi for t in inside)
    assert not any(lo <= t < hi for t in outside)


def test_namespace_text_round_trips_and_the_root_is_empty() -> None:
    for ns in [(), ("a",), ("u_1", "%", "*", "사용자")]:
        assert namespaces.from_text(namespaces.to_text(ns)) == ns
    assert namespaces.ancestors(("a", "b", "c")) == ["", "a", "a.b"]


@pytest.mark.parametrize("bad", [("a.b",), ("",), ("a\x00",), ("\ud800",), (1,), "ab"])
def test_invalid_labels_are_refused(bad) -> None:
    with pytest.raises(InvalidNamespaceError):
        namespaces.labels(bad)


def test_listing_narrows_by_the_literal_start_and_finishes_label_by_label() -> None:
    plan = namespaces.plan_listing(
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("a", "*", "c")),), max_depth=3)
    )
    assert plan.literal_prefix == ("a",)
    assert plan.min_depth == 3
    found = plan.finish([("a", "x", "c", "d"), ("a", "y", "c"), ("a", "y", "d"), ("a-c", "x", "c")])
    assert found == [("a", "x", "c"), ("a", "y", "c")]


def test_values_are_encoded_as_strict_json_text() -> None:
    text = values.encode({"b": True, "i": 1, "f": 1.0, "big": 2**70, "t": (1, 2), "n": "\x00"})
    assert values.decode(text) == {
        "b": True,
        "i": 1,
        "f": 1.0,
        "big": 2**70,
        "t": [1, 2],
        "n": "\x00",
    }
    assert type(values.decode(text)["f"]) is float
    assert values.NUL_ESCAPE in text
    with pytest.raises(InvalidValue):
        values.encode({"x": float("nan")})


def test_json_equality_tells_types_apart() -> None:
    assert not json_equal(True, 1)
    assert not json_equal(1, 1.0)
    assert not json_equal(None, 0)
    assert json_equal(2**70, 2**70)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})


@pytest.mark.parametrize(
    ("raw", "containment", "exact"),
    [
        ({"s": "red"}, {"s": "red"}, True),
        ({"o": {"p": "x", "q": True}}, {"o": {"p": "x", "q": True}}, True),
        ({"v": None}, {"v": None}, True),
        ({"s": {"$eq": "red"}}, {"s": "red"}, True),
        ({"n": 1}, {"n": 1}, False),  # jsonb: 1 = 1.0
        ({"l": ["x"]}, {"l": ["x"]}, False),  # jsonb arrays: unordered subsets
        ({"o": {"$eq": {"p": "x"}}}, {"o": {"p": "x"}}, False),  # $eq is whole equality
        ({"s": "red", "n": {"$gt": 1}}, {"s": "red"}, False),
        ({"n": {"$gt": 1}}, None, False),
        ({"s": {"$ne": "red"}}, None, False),
        ({"o": {}}, None, False),
        ({"s": "a\x00b"}, None, False),  # jsonb cannot hold NUL
    ],
)
def test_which_filters_sql_may_decide(raw, containment, exact) -> None:
    compiled = compile_filter(raw)
    assert compiled is not None
    assert compiled.containment == containment
    assert compiled.exact_in_sql is exact


def test_filter_meaning() -> None:
    def keys(raw: dict, docs: dict[str, dict]) -> set[str]:
        compiled = compile_filter(raw)
        assert compiled is not None
        return {k for k, doc in docs.items() if compiled.matches(doc)}

    docs = {
        "int": {"v": 1},
        "float": {"v": 1.0},
        "bool": {"v": True},
        "null": {"v": None},
        "none": {},
        "text": {"v": "1"},
    }
    assert keys({"v": 1}, docs) == {"int"}
    assert keys({"v": None}, docs) == {"null"}
    assert keys({"v": {"$ne": 1}}, docs) == {"float", "bool", "null", "none", "text"}
    assert keys({"v": {"$gte": 1}}, docs) == {"int", "float"}
    assert keys({"v": {"$gte": "1"}}, docs) == {"text"}
    assert compile_filter({}) is None and compile_filter(None) is None
