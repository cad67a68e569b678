"""SQL decides only what it provably decides: for random values and filters, a search on
Postgres (jsonb containment pre-filter, LIMIT pushed down when the filter is marked exact)
answers exactly what the filter's Python meaning answers."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from memlayer.store import MemlayerStore
from memlayer.store.filters import compile_filter

FIELDS = st.sampled_from(["a", "b", "c"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 2**53, 2**53 + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, -0.0, 1e16, 0.1]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=4),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS, inner, max_size=3),
    max_leaves=8,
)
documents = st.dictionaries(FIELDS, json_values, max_size=3)
operands = st.one_of(
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
)
operators = st.one_of(
    st.dictionaries(st.sampled_from(["$eq", "$ne"]), json_values, min_size=1, max_size=2),
    st.dictionaries(
        st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), operands, min_size=1, max_size=2
    ),
)
conditions = st.recursive(
    st.one_of(scalars, operators),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(FIELDS, inner, min_size=1, max_size=2)
    ),
    max_leaves=6,
)
random_filters = st.dictionaries(FIELDS, conditions, min_size=1, max_size=2)


@st.composite
def near(draw: st.DrawFn, value: object) -> object:
    """``value``, or a near miss that jsonb containment confuses with it: 1 for 1.0 or
    True, a shorter or reordered list, an object with fewer keys, a wrapped scalar."""
    if not draw(st.booleans()):
        return value
    if isinstance(value, bool):
        return draw(st.sampled_from([int(value), float(value), not value]))
    if isinstance(value, int):
        return draw(st.sampled_from([float(value), value + 1, [value], value == 1]))
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**63 else [value]
    if isinstance(value, list):
        if value and draw(st.booleans()):
            return [draw(near(x)) for x in value[:-1]]
        return list(reversed(value)) + draw(st.sampled_from([[], [value[0]] if value else []]))
    if isinstance(value, dict):
        keys = draw(st.lists(st.sampled_from(sorted(value)), unique=True)) if value else []
        return {k: draw(near(value[k])) for k in keys}
    return draw(st.sampled_from([[value], {"a": value}, None]))


@st.composite
def filters_for(draw: st.DrawFn, document: dict) -> dict:
    """Often a piece of the document itself or a near miss of it, so that matches and the
    cases where jsonb and strict JSON disagree are common."""
    if not document or draw(st.integers(0, 3)) == 0:
        return draw(random_filters)
    names = draw(st.lists(st.sampled_from(sorted(document)), min_size=1, unique=True))
    chosen = {name: draw(near(document[name])) for name in names}
    if draw(st.booleans()):  # sometimes as $eq
        name = draw(st.sampled_from(sorted(chosen)))
        chosen[name] = {"$eq": chosen[name]}
    return chosen


async def test_sql_prefilter_and_pushdown_agree_with_the_filter_meaning(
    store: MemlayerStore,
) -> None:
    numbers = itertools.count()

    @settings(max_examples=200, deadline=None, database=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        document = data.draw(documents, label="document")
        search_filter = data.draw(filters_for(document), label="filter")
        compiled = compile_filter(search_filter)
        namespace = ("pushdown", str(next(numbers)))
        store.put(namespace, "k", document)
        found = store.search(namespace, filter=search_filter, limit=1)
        expected = compiled is None or compiled.matches(store.get(namespace, "k").value)
        assert [i.key for i in found] == (["k"] if expected else []), (
            f"exact_in_sql={compiled.exact_in_sql if compiled else None}"
        )

    await asyncio.to_thread(check)
