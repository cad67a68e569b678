"""What the memory service accepts, every tier can carry.

A preference value travels Postgres (JSONB) → the msgpack cache → the API's JSON (orjson)
→ the workflow's state. The service refuses anything one of them cannot carry unchanged
(integers beyond int64, NaN and infinities, NUL characters, deep nesting), and the property
below holds it to that for arbitrary JSON-like values on real Postgres.
"""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from memlayer.api.routes.memory import context_json
from memlayer.cache import codec
from memlayer.memory.errors import InvalidMemory
from memlayer.memory.values import is_portable
from memlayer.records import LoadResult, LoadSource


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        2**63,
        -(2**63) - 1,
        10**400,
        float("nan"),
        float("inf"),
        -float("inf"),
        1e19,
        4.108811212073897e16,
        {"amount_krw": 10**400, "bound": "max"},
        {"a": [1, {"b": 2**64}]},
        {"x": [float("nan")]},
        _nested(40),
        "a\x00b",
        {"a\x00": 1},
        "\ud800",
    ],
)
async def test_the_service_refuses_values_some_tier_cannot_carry(pg_service, make_user, value):
    user_id = await make_user()
    with pytest.raises(InvalidMemory):
        await pg_service.upsert_preferences(user_id, {"v": value})
    assert (await pg_service.load_context(user_id)).context.preferences == {}


@pytest.mark.parametrize(
    "value",
    [2**63 - 1, -(2**63), 1.5, 1e15, 2.0**53 - 1, -0.0, _nested(10), {"a": [None, "텍스트"]}],
)
async def test_the_service_accepts_values_at_the_edges(pg_service, make_user, value):
    user_id = await make_user()
    await pg_service.upsert_preferences(user_id, {"v": value})
    assert (await pg_service.load_context(user_id)).context.preferences == {"v": value}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ud800"])),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

SERDE = JsonPlusSerializer()


def same(a: object, b: object) -> bool:
    """Equal as JSON sees it (1 == 1.0; NaN never gets this far)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=json_values)
async def test_whatever_the_service_accepts_round_trips_through_every_tier(
    pg_service, make_user, value
):
    user_id = await make_user()
    try:
        await pg_service.upsert_preferences(user_id, {"v": value})
    except InvalidMemory:
        assert not is_portable(value), "refused a value every tier can carry"
        return
    assert is_portable(value)
    result = await pg_service.load_context(user_id)  # from Postgres (no cache tier here)
    stored = result.context.preferences["v"]
    assert same(stored, value)

    cached = codec.decode(codec.encode(result.context))
    assert cached is not None and same(cached.preferences["v"], value)

    served = orjson.loads(context_json(LoadResult(result.context, LoadSource.DATABASE)))
    assert same(served["preferences"]["v"], value)

    state = SERDE.loads_typed(SERDE.dumps_typed({"user_preferences": {"v": stored}}))
    assert same(state["user_preferences"]["v"], value)
