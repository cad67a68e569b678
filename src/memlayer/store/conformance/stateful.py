"""A Hypothesis state machine: random streams of store ops, compared op by op with
``InMemoryStore``.

The store under test is driven through its synchronous methods from a worker thread (so
async stores must run their loop elsewhere, as LangGraph's own do), the reference in the
same thread. Every step checks the store's answer against the reference's:

- get: same presence and the same JSON value;
- search (prefix, filter, limit, offset): the reference decides which items match; the
  store's ``order`` (see below) decides the page, which must then be exactly the store's;
- list_namespaces (prefix/suffix with wildcards, max_depth, limit, offset): identical.

Generated data stays inside what the reference gets right (see the kit's explicit tests for
the rest): each field has one JSON type, comparison operators only touch a field every item
has, and no filter compares with null. Namespaces are awkward on purpose: ``%``, ``_``,
``*``, unicode, long labels and deep nesting. After each step, namespaces the reference
keeps although they hold no item (it remembers namespaces that were only read or emptied)
are pruned from it, so listings compare like with like.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Literal

from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from langgraph.store.base import BaseStore, Item, PutOp
from langgraph.store.memory import InMemoryStore

from memlayer.store.conformance.jsonstrict import same_json

Order = Literal["newest_first"]

# Few labels, so namespaces collide often, in families of near misses that searches and
# listings swap for each other: "john" beside "john-doe" and "johnny" (a prefix must not
# cross a label's end), "u" beside "u_1", "uX1" and "u%" (no LIKE wildcards), "*".
LABELS = [
    "john",
    "john-doe",
    "johnny",
    "u",
    "u_1",
    "uX1",
    "u%",
    "%",
    "_",
    "*",
    "사용자",
    "😀",
    "x" * 120,
]
KEYS = ["k", "k_1", "k%", "*", "기억", "a b"]

labels = st.sampled_from(LABELS)
namespaces = st.lists(labels, min_size=1, max_size=3).map(tuple)
deep_namespaces = st.lists(labels, min_size=5, max_size=10).map(tuple)
fresh_namespaces = st.one_of(namespaces, namespaces, namespaces, deep_namespaces)
prefixes = st.lists(labels, min_size=0, max_size=3).map(tuple)
keys = st.sampled_from(KEYS)

# One JSON type per field, so Python equality (the reference's) is strict JSON equality.
values = st.fixed_dictionaries(
    {
        "n": st.integers(min_value=-(2**53), max_value=2**53),  # always present: comparable
        "s": st.sampled_from(["red", "blue", "", "사과", "a%_*"]),
    },
    optional={
        "b": st.booleans(),
        "f": st.sampled_from([0.5, 1.25, -3.75, 1e16, 1e-7]),
        "o": st.fixed_dictionaries(
            {"p": st.sampled_from(["x", "y"])}, optional={"q": st.integers(0, 3)}
        ),
        "l": st.lists(st.integers(0, 2), max_size=3),
    },
)

comparisons = st.sampled_from(["$gt", "$gte", "$lt", "$lte"])
filters = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={"s": st.sampled_from(["red", "blue", "사과"])}),
    st.fixed_dictionaries({"b": st.booleans()}),
    st.fixed_dictionaries({"o": st.fixed_dictionaries({"p": st.sampled_from(["x", "y"])})}),
    st.fixed_dictionaries({"l": st.lists(st.integers(0, 2), max_size=3)}),
    st.fixed_dictionaries({"f": st.sampled_from([0.5, 1e16])}),
    st.dictionaries(comparisons, st.integers(-(2**53), 2**53), min_size=1, max_size=2).map(
        lambda ops: {"n": ops}
    ),
    st.fixed_dictionaries({"s": st.fixed_dictionaries({"$ne": st.sampled_from(["red", "x"])})}),
    st.fixed_dictionaries({"b": st.fixed_dictionaries({"$ne": st.booleans()})}),
)


def store_state_machine(
    store: BaseStore, reset: Callable[[], None], order: Order = "newest_first"
) -> type[RuleBasedStateMachine]:
    """The machine class for ``store``; ``reset()`` must empty it (called per example).

    ``order`` is the store's documented order of a plain search: "newest_first" is
    ``updated_at`` descending, then namespace text and key ascending (ties happen only
    within one batch, which shares one timestamp).
    """
    if order != "newest_first":
        raise ValueError(f"unknown search order {order!r}")

    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.reference = InMemoryStore()
            self.tick: dict[tuple[tuple[str, ...], str], int] = {}
            self.clock = itertools.count(1)

        @initialize()
        def empty(self) -> None:
            reset()

        # --- what to touch: mostly what exists, sometimes something new ----------------

        def _namespace(self, data: st.DataObject) -> tuple[str, ...]:
            known = sorted({ns for ns, _ in self.tick})
            reuse = data.draw(st.booleans(), label="reuse a namespace")
            if known and reuse:
                base = data.draw(st.sampled_from(known), label="known namespace")
                # a sibling, a child or the namespace itself
                how = data.draw(st.sampled_from(["same", "child", "sibling"]), label="how")
                if how == "child":
                    return (*base, data.draw(labels, label="child label"))
                if how == "sibling":
                    return (*base[:-1], data.draw(labels, label="sibling label"))
                return base
            return data.draw(fresh_namespaces, label="fresh namespace")

        def _prefix(self, data: st.DataObject, *, wildcards: bool = False) -> tuple[str, ...]:
            """A fresh prefix, the start of a known namespace, or a near miss of one: its
            last label swapped for one that starts it or that it starts ("john" where the
            data has "john-doe"), and for listings, maybe a label swapped for "*"."""
            known = sorted({ns for ns, _ in self.tick})
            mode = data.draw(st.sampled_from(["fresh", "known", "near"]), label="prefix kind")
            if not known or mode == "fresh":
                return data.draw(prefixes, label="fresh prefix")
            base = data.draw(st.sampled_from(known), label="known namespace")
            path = list(base[: data.draw(st.integers(1, len(base)), label="depth")])
            if mode == "near":
                last = path[-1]
                family = [
                    x for x in LABELS if x != last and (x.startswith(last) or last.startswith(x))
                ]
                if family:
                    path[-1] = data.draw(st.sampled_from(family), label="near-miss label")
            if wildcards and data.draw(st.booleans(), label="a wildcard"):
                path[data.draw(st.integers(0, len(path) - 1), label="where")] = "*"
            return tuple(path)

        def _item(self, data: st.DataObject) -> tuple[tuple[str, ...], str]:
            existing = data.draw(st.booleans(), label="an existing item")
            if self.tick and existing:
                return data.draw(st.sampled_from(sorted(self.tick)), label="existing item")
            return self._namespace(data), data.draw(keys, label="key")

        # --- writes --------------------------------------------------------------------

        @rule(data=st.data(), value=values)
        def put(self, data: st.DataObject, value: dict[str, Any]) -> None:
            namespace, key = self._item(data)
            store.put(namespace, key, value)
            self.reference.put(namespace, key, value)
            self.tick[(namespace, key)] = next(self.clock)

        @rule(data=st.data(), size=st.integers(1, 5))
        def put_batch(self, data: st.DataObject, size: int) -> None:
            writes = []
            for _ in range(size):
                namespace, key = self._item(data)
                value = data.draw(st.one_of(st.none(), values), label="value or delete")
                writes.append((namespace, key, value))
            ops = [PutOp(ns, k, v) for ns, k, v in writes]
            store.batch(ops)
            self.reference.batch(ops)
            now = next(self.clock)
            for ns, k, v in writes:
                if v is None:
                    self.tick.pop((ns, k), None)
                else:
                    self.tick[(ns, k)] = now

        @rule(data=st.data())
        def delete(self, data: st.DataObject) -> None:
            namespace, key = self._item(data)
            store.delete(namespace, key)
            self.reference.delete(namespace, key)
            self.tick.pop((namespace, key), None)

        # --- reads -----------------------------------------------------------------------

        @rule(data=st.data())
        def get(self, data: st.DataObject) -> None:
            namespace, key = self._item(data)
            got = store.get(namespace, key)
            want = self.reference.get(namespace, key)
            if want is None:
                assert got is None, f"{namespace}/{key}: expected nothing, got {got}"
                return
            assert isinstance(got, Item), f"{namespace}/{key}: missing"
            assert (got.namespace, got.key) == (want.namespace, want.key)
            assert same_json(got.value, want.value), (got.value, want.value)
            assert got.created_at <= got.updated_at

        @rule(
            data=st.data(),
            search_filter=filters,
            limit=st.integers(0, 12),
            offset=st.integers(0, 12),
        )
        def search(
            self,
            data: st.DataObject,
            search_filter: dict[str, Any] | None,
            limit: int,
            offset: int,
        ) -> None:
            prefix = self._prefix(data)
            matching = self.reference.search(prefix, filter=search_filter, limit=10**6)
            matching.sort(
                key=lambda i: (-self.tick[(i.namespace, i.key)], ".".join(i.namespace), i.key)
            )
            want = [(i.namespace, i.key) for i in matching[offset : offset + limit]]
            found = store.search(prefix, filter=search_filter, limit=limit, offset=offset)
            got = [(i.namespace, i.key) for i in found]
            assert got == want, f"search {prefix} {search_filter} [{offset}:+{limit}]"
            by_key = {(i.namespace, i.key): i for i in matching}
            for item in found:
                assert same_json(item.value, by_key[(item.namespace, item.key)].value)

        @rule(
            data=st.data(),
            max_depth=st.one_of(st.none(), st.integers(1, 6)),
            limit=st.integers(0, 30),
            offset=st.integers(0, 5),
        )
        def list_namespaces(
            self, data: st.DataObject, max_depth: int | None, limit: int, offset: int
        ) -> None:
            prefix = suffix = None
            if data.draw(st.booleans(), label="with a prefix"):
                prefix = self._prefix(data, wildcards=True) or None
            if data.draw(st.booleans(), label="with a suffix"):
                suffix = tuple(reversed(self._prefix(data, wildcards=True))) or None
                if suffix and data.draw(st.booleans(), label="suffix of a known namespace"):
                    known = sorted({ns for ns, _ in self.tick}) or [suffix]
                    base = data.draw(st.sampled_from(known), label="known namespace")
                    suffix = base[-data.draw(st.integers(1, len(base)), label="length") :]
            kwargs = {
                "prefix": prefix,
                "suffix": suffix,
                "max_depth": max_depth,
                "limit": limit,
                "offset": offset,
            }
            got = store.list_namespaces(**kwargs)  # type: ignore[arg-type]
            want = self.reference.list_namespaces(**kwargs)  # type: ignore[arg-type]
            assert got == want, f"list_namespaces {kwargs}"

        @invariant()
        def reference_keeps_only_namespaces_with_items(self) -> None:
            data = self.reference._data  # documented as the in-memory API's own
            for namespace in [ns for ns, held in data.items() if not held]:
                del data[namespace]

    return StoreMachine


#: Bounded so a run against a real database takes seconds, not minutes.
DEFAULT_SETTINGS = hypothesis_settings(max_examples=25, stateful_step_count=30, deadline=None)


def run_store_state_machine(
    store: BaseStore,
    reset: Callable[[], None],
    order: Order = "newest_first",
    settings: hypothesis_settings | None = None,
) -> None:
    """Run the machine (blocking: call it from a worker thread if ``store`` is async)."""
    run_state_machine_as_test(
        store_state_machine(store, reset, order), settings=settings or DEFAULT_SETTINGS
    )
