"""The codec: exact round trips, and nothing but CodecError out of hostile bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memlayer.cache.codec import (
    HEADER_LEN,
    MAX_VERSION,
    SCHEMA,
    decode,
    encode,
    encode_marker,
    is_marker,
    value_version,
)
from memlayer.cache.errors import CodecError
from memlayer.records import EntityRecord, MemoryContext, MemoryRecord

INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what msgpack can carry
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["안녕하세요", "서울 맛집 추천", "café ☕", "😀 emoji", ""]
)
AWARE = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1)).flatmap(
    lambda dt: st.integers(min_value=-14 * 60, max_value=14 * 60).map(
        lambda minutes: dt.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    )
)
JSON = st.recursive(
    st.none() | st.booleans() | INT64 | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
MEMORY = st.builds(
    MemoryRecord,
    id=INT64,
    summary=TEXT,
    intent=st.none() | TEXT,
    entities=st.lists(TEXT, max_size=4).map(tuple),
    message_count=INT64,
    created_at=AWARE,
    chat_session_id=st.none() | TEXT,
)
ENTITY = st.builds(EntityRecord, type=TEXT, name=TEXT, mention_count=INT64, last_seen=AWARE)
CONTEXT = st.builds(
    MemoryContext,
    user_id=st.integers(min_value=0, max_value=2**63 - 1),
    version=st.integers(min_value=0, max_value=MAX_VERSION),
    memories=st.lists(MEMORY, max_size=5).map(tuple),
    preferences=st.dictionaries(TEXT, JSON, max_size=5),
    entities=st.lists(ENTITY, max_size=5).map(tuple),
)


@given(CONTEXT)
@settings(max_examples=300, deadline=None)
def test_any_context_round_trips_exactly(context: MemoryContext) -> None:
    raw = encode(context)

    decoded = decode(raw)

    assert decoded == context
    assert value_version(raw) == context.version
    assert [m.created_at for m in decoded.memories] == [m.created_at for m in context.memories]
    assert all(m.created_at.tzinfo is not None for m in decoded.memories)


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_random_bytes_raise_nothing_but_codec_error(data: bytes) -> None:
    try:
        decode(data)
    except CodecError:
        pass


@given(st.binary(max_size=300), st.sampled_from([b"C", b"M", b"X"]))
@settings(max_examples=500, deadline=None)
def test_random_payload_behind_a_valid_header_raises_only_codec_error(
    payload: bytes, flag: bytes
) -> None:
    try:
        decode(SCHEMA + b"%020d" % 7 + flag + payload)
    except CodecError:
        pass


def test_marker_carries_a_version_and_decodes_as_a_miss() -> None:
    marker = encode_marker(42)

    assert len(marker) == HEADER_LEN and is_marker(marker)
    assert value_version(marker) == 42
    assert decode(marker) is None


def test_header_is_fixed_width_decimal_for_lua() -> None:
    raw = encode(MemoryContext.empty(5, 123))

    assert raw[:1] == SCHEMA
    assert raw[1:21] == b"00000000000000000123"
    assert raw[21:22] == b"C"


def test_wrong_schema_byte_is_a_codec_error() -> None:
    raw = encode(MemoryContext.empty(5, 1))

    with pytest.raises(CodecError):
        decode(b"\x02" + raw[1:])


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive = datetime(2024, 1, 2, 3, 4, 5, 6)
    context = MemoryContext(1, 1, (MemoryRecord(1, "s", None, (), 1, naive),))

    decoded = decode(encode(context))

    assert decoded is not None
    assert decoded.memories[0].created_at == naive.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "context",
    [
        MemoryContext(1, 1, preferences={"big": 2**64}),  # beyond msgpack's integers
        MemoryContext(1, 1, preferences={"obj": object()}),
        MemoryContext(1, MAX_VERSION + 1),
        MemoryContext(1, -1),
        MemoryContext(None, 1),
    ],
)
def test_unencodable_contexts_raise_codec_error(context: MemoryContext) -> None:
    with pytest.raises(CodecError):
        encode(context)
