"""Key names parse back into what they name (the invalidation link's input)."""

from __future__ import annotations

import pytest

from memlayer.cache import keys
from memlayer.cache.keys import EPOCH_KEY, OTHER_KEY, EntityKey, KeyParser, ProbeKey


@pytest.mark.parametrize("prefix", ["memlayer", "memlayer-test-1a2b", "a:b", "x[1]*"])
@pytest.mark.parametrize(("user_id", "generation"), [(0, 0), (42, 7), (10**12, 123)])
def test_context_keys_round_trip(prefix: str, user_id: int, generation: int) -> None:
    name = keys.context_key(prefix, user_id, generation).encode()

    assert KeyParser(prefix).parse(name) == EntityKey(keys.CONTEXT_FAMILY, user_id, generation)


def test_a_lease_key_names_no_cached_entity() -> None:
    assert KeyParser("p").parse(keys.lease_key("p", 42, 3).encode()) is OTHER_KEY
    digest = keys.namespace_digest("users.42")
    assert KeyParser("p").parse(keys.namespace_lease_key("p", digest, 3).encode()) is OTHER_KEY


@pytest.mark.parametrize("prefix", ["memlayer", "a:b", "x[1]*"])
@pytest.mark.parametrize("text", ["users.42.memories", "x}:g1:ns", "키.값"])
def test_namespace_keys_round_trip_to_their_digest(prefix: str, text: str) -> None:
    digest = keys.namespace_digest(text)
    name = keys.namespace_key(prefix, digest, 9).encode()

    assert KeyParser(prefix).parse(name) == EntityKey(keys.NAMESPACE_FAMILY, digest, 9)


def test_probe_keys_carry_their_writer_and_write_time() -> None:
    name = keys.probe_key("p", 4321, 1_700_000_000_123_456_789).encode()

    assert KeyParser("p").parse(name) == ProbeKey(4321, 1_700_000_000_123_456_789)


def test_the_epoch_record_is_tracked_and_named_as_such() -> None:
    assert KeyParser("p").parse(keys.epoch_key("p").encode()) is EPOCH_KEY


def test_every_key_built_lies_under_a_tracked_prefix() -> None:
    names = [
        keys.context_key("p", 1, 2),
        keys.lease_key("p", 1, 2),
        keys.probe_key("p", 1, 2),
        keys.epoch_key("p"),
        keys.namespace_key("p", keys.namespace_digest("n"), 2),
        keys.namespace_lease_key("p", keys.namespace_digest("n"), 2),
    ]
    tracked = keys.tracked_prefixes("p")

    assert all(any(n.startswith(t) for t in tracked) for n in names)
    assert not any(a.startswith(b) for a in tracked for b in tracked if a != b)  # Redis: disjoint


@pytest.mark.parametrize(
    "name",
    [
        b"other:v1:{u:42}:g1:ctx",  # another prefix
        b"p-more:v1:{u:42}:g1:ctx",  # a prefix that merely starts the same
        b"p:v1:{u:x}:g1:ctx",
        b"p:v1:{u:42}:gx:ctx",
        b"p:v1:{u:42}:g1",
        b"p:v1:{u:42",
        b"p:v1:probe:12",
        b"p:v1:probe:a:b",
        b"p:v1:epochs",  # starts like the epoch record, is not it
        b"p:v1:{n:0123456789abcdef0123456789abcdeX}:g1:ns",  # not a digest
        b"p:v1:{n:0123456789abcdef0123456789abcde}:g1:ns",  # a digit short
        b"p:v1:{n:0123456789ABCDEF0123456789ABCDEF}:g1:ns",  # digests are lower case
        b"p:v1:{n:0123456789abcdef0123456789abcdef}:gx:ns",
        b"p:v1:{n:0123456789abcdef0123456789abcdef}:g1",
        b"p:v1:generation",  # the pre-epoch counter: read by turnovers only
    ],
)
def test_foreign_or_malformed_names_parse_to_nothing(name: bytes) -> None:
    assert KeyParser("p").parse(name) is None
