"""Key names: one hash slot per user, the prefix first, nothing else builds keys."""

from __future__ import annotations

import re

import pytest
from redis.crc import key_slot

from memlayer.cache import keys


def test_context_key_layout() -> None:
    assert keys.context_key("memlayer", 42, 3) == "memlayer:v1:{u:42}:g3:ctx"
    assert keys.lease_key("memlayer", 42, 3) == "memlayer:v1:{u:42}:g3:lease"
    assert keys.epoch_key("memlayer") == "memlayer:v1:epoch"


@pytest.mark.parametrize("user_id", [0, 1, 42, 10**12])
def test_a_users_keys_share_one_cluster_slot(user_id: int) -> None:
    slots = {key_slot(keys.context_key("p", user_id, g).encode()) for g in range(5)} | {
        key_slot(keys.lease_key("p", user_id, g).encode()) for g in range(5)
    }

    assert len(slots) == 1


def test_different_users_spread_over_slots() -> None:
    slots = {key_slot(keys.context_key("p", u, 0).encode()) for u in range(200)}
    assert len(slots) > 100


def test_keys_are_built_from_integer_ids_only() -> None:
    with pytest.raises(ValueError):
        keys.context_key("p", "42}:x", 0)  # type: ignore[arg-type]


def test_scan_pattern_matches_only_this_prefix() -> None:
    pattern = keys.scan_pattern("test[1]*")
    regex = re.escape("test[1]*") + ":v1:.*"

    assert pattern == "test\\[1\\]\\*:v1:*"
    assert re.fullmatch(regex, keys.context_key("test[1]*", 1, 0))
    assert not re.fullmatch(regex, keys.context_key("test1x", 1, 0))
