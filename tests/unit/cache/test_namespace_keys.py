"""Keys of the store's namespaces: digests in the hash tag, whatever the labels hold."""

from __future__ import annotations

import hashlib

import pytest
from redis.crc import key_slot

from memlayer.cache import keys


def test_a_namespace_key_names_its_digest_and_generation() -> None:
    digest = keys.namespace_digest("users.42.memories")

    assert digest == hashlib.sha256(b"users.42.memories").hexdigest()[:32]
    assert keys.namespace_key("p", digest, 3) == f"p:v1:{{n:{digest}}}:g3:ns"
    assert keys.namespace_lease_key("p", digest, 3) == f"p:v1:{{n:{digest}}}:g3:lease"


@pytest.mark.parametrize("text", ["a", "users.{42}", "x}:g1:ns", "키.값", "a" * 5000])
def test_labels_with_any_characters_stay_out_of_the_key_and_in_one_slot(text: str) -> None:
    digest = keys.namespace_digest(text)
    names = [keys.namespace_key("p", digest, g) for g in range(3)]
    names += [keys.namespace_lease_key("p", digest, g) for g in range(3)]

    assert all(name.count("{") == 1 and name.count("}") == 1 for name in names)  # one tag
    assert len({key_slot(name.encode()) for name in names}) == 1


def test_keys_are_built_from_digests_only() -> None:
    with pytest.raises(ValueError):
        keys.namespace_key("p", "users.42", 0)
    assert keys.is_namespace_digest(keys.namespace_digest("x"))
    assert not keys.is_namespace_digest("42")


def test_namespace_keys_parse_as_the_store_s_family_never_as_contexts() -> None:
    digest = keys.namespace_digest("n")
    name = keys.namespace_key("p", digest, 1).encode()
    assert keys.KeyParser("p").parse(name) == keys.EntityKey(keys.NAMESPACE_FAMILY, digest, 1)
