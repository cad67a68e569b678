"""A namespace's cached bytes: the cache tier's header, then the namespace's items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memlayer.cache.codec import encode_marker, frame, read_frame, value_version
from memlayer.cache.errors import CodecError
from memlayer.cache.keys import namespace_digest
from memlayer.store.cached_values import NamespaceValue, decode, encode
from memlayer.store.repository import ItemRow, NamespaceRows

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def row(key: str, *, expires_in: float | None = None) -> ItemRow:
    expires = None if expires_in is None else T0 + timedelta(seconds=expires_in)
    ttl = None if expires_in is None else expires_in / 60
    return ItemRow("a.b", key, '{"v":1}', T0, T0 + timedelta(microseconds=1), ttl, expires)


def value(*rows: ItemRow, truncated: bool = False) -> NamespaceValue:
    return NamespaceValue.from_rows(NamespaceRows("a.b", 7, False, rows, truncated, T0))


def test_a_value_round_trips_exactly() -> None:
    original = value(row("k1"), row("k2", expires_in=30))
    raw = encode(original)

    assert value_version(raw) == 7
    again = decode(namespace_digest("a.b"), raw)
    assert again == original
    assert again is not None and again.by_key["k2"].expires_at == T0 + timedelta(seconds=30)


def test_a_value_is_valid_until_its_earliest_expiry() -> None:
    cached = value(row("forever"), row("soon", expires_in=10), row("later", expires_in=60))

    assert cached.valid_until == T0 + timedelta(seconds=10)
    assert not cached.expired(T0 + timedelta(seconds=9.999))
    assert cached.expired(T0 + timedelta(seconds=10))
    assert value(row("forever")).valid_until is None


def test_a_namespace_over_the_cap_keeps_its_version_and_no_items() -> None:
    over = value(row("k1"), truncated=True)
    assert over.over_cap and over.items == () and not over.answers_gets
    assert decode(namespace_digest("a.b"), encode(over)) == over


def test_a_marker_decodes_to_nothing_and_a_foreign_value_is_corrupt() -> None:
    assert decode(namespace_digest("a.b"), encode_marker(9)) is None
    with pytest.raises(CodecError):
        decode(namespace_digest("other"), encode(value(row("k"))))
    with pytest.raises(CodecError):
        decode(namespace_digest("a.b"), frame(3, b"\xc1 not msgpack"))


def test_framing_is_the_context_codec_s_header() -> None:
    raw = frame(12, b"payload")
    assert value_version(raw) == 12
    version, payload = read_frame(raw)
    assert (version, bytes(payload or b"")) == (12, b"payload")
    assert read_frame(encode_marker(5)) == (5, None)
    with pytest.raises(CodecError):
        read_frame(b"\x02" + raw[1:])
