"""The near-cache serves only what Redis still vouches for, within its bounds.

Pure logic: link and tier events are plain calls here (the link itself is tested on real
Redis in tests/integration/cache/test_invalidation_link.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest

from memlayer.cache.breaker import CircuitBreaker
from memlayer.cache.dirty import DirtyUsers
from memlayer.cache.keys import CONTEXT_FAMILY, NAMESPACE_FAMILY, EntityKey, namespace_digest
from memlayer.cache.near import FillOutcome, NearCache, NearEntry, NearKey
from memlayer.cache.state import TierEvent, TierState

GEN = 3


@dataclass(frozen=True)
class Val:
    version: int
    payload: str


def raw_of(value: Val, size: int = 0) -> bytes:
    body = f"{value.version}:{value.payload}".encode()
    return body + b" " * max(0, size - len(body))


class Decoder:
    """Counts decodes, so tests can see the memo at work."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, raw: bytes) -> Val | None:
        self.calls += 1
        text = raw.decode().rstrip()
        if text == "marker":
            return None
        version, payload = text.split(":", 1)
        return Val(int(version), payload)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_near(
    max_entries: int = 100,
    max_bytes: int = 1 << 20,
    *,
    serving: bool = True,
    clock: Clock | None = None,
    recheck_fraction: float = 0.0,
    rechecked: list[tuple[NearKey, NearEntry[Val]]] | None = None,
) -> NearCache[Val]:
    near: NearCache[Val] = NearCache(
        max_entries=max_entries,
        max_bytes=max_bytes,
        max_age_s=60.0,
        version_of=lambda v: v.version,
        recheck_fraction=recheck_fraction,
        recheck=(lambda k, e: rechecked.append((k, e))) if rechecked is not None else None,
        clock=clock or Clock(),
        rng=random.Random(1),
    )
    if serving:
        near.link_established()
    return near


def fill(
    near: NearCache[Val], user: int, value: Val, *, size: int = 0, gen: int = GEN
) -> FillOutcome:
    ticket = near.begin((CONTEXT_FAMILY, user))
    _, outcome = near.settle(ticket, raw_of(value, size), gen, Decoder())
    return outcome


def key(user: int) -> NearKey:
    return (CONTEXT_FAMILY, user)


# ---------------------------------------------------------------- serving


def test_a_filled_entry_is_served_with_its_version_and_generation() -> None:
    near = make_near()

    assert fill(near, 1, Val(7, "a")) is FillOutcome.INSTALLED
    entry = near.get(key(1), GEN)

    assert entry is not None
    assert (entry.value, entry.version, entry.generation) == (Val(7, "a"), 7, GEN)


def test_nothing_is_served_before_the_link_is_established() -> None:
    near = make_near(serving=False)

    assert fill(near, 1, Val(1, "a")) is FillOutcome.NOT_SERVING
    assert near.get(key(1), GEN) is None


def test_a_read_begun_before_the_link_was_established_is_never_served() -> None:
    near = make_near(serving=False)
    ticket = near.begin(key(1))
    near.link_established()

    _, outcome = near.settle(ticket, raw_of(Val(1, "a")), GEN, Decoder())

    assert outcome is FillOutcome.NOT_SERVING
    assert near.get(key(1), GEN) is None
    assert fill(near, 1, Val(1, "a")) is FillOutcome.INSTALLED  # a read begun after is


def test_an_entry_of_another_generation_is_not_served_and_goes() -> None:
    near = make_near()
    fill(near, 1, Val(1, "a"), gen=GEN)

    assert near.get(key(1), GEN + 1) is None
    assert key(1) not in near


def test_an_entry_older_than_the_maximum_age_is_not_served() -> None:
    clock = Clock()
    near = make_near(clock=clock)
    fill(near, 1, Val(1, "a"))

    clock.now += 59
    assert near.get(key(1), GEN) is not None
    clock.now += 2
    assert near.get(key(1), GEN) is None


# ----------------------------------------------- the fill/invalidation race


def test_a_read_that_raced_with_an_invalidation_of_its_key_is_not_served() -> None:
    near = make_near()
    ticket = near.begin(key(1))  # the GET is sent...
    near.invalidated([EntityKey(CONTEXT_FAMILY, 1, GEN)])  # ...a write's invalidation lands

    value, outcome = near.settle(ticket, raw_of(Val(1, "old")), GEN, Decoder())

    assert value == Val(1, "old")  # this load still returns what Redis answered
    assert outcome is FillOutcome.RACED
    assert near.get(key(1), GEN) is None  # but nobody is served it from memory


def test_an_invalidation_processed_before_the_read_began_does_not_void_it() -> None:
    near = make_near()
    near.invalidate(key(1))

    assert fill(near, 1, Val(2, "new")) is FillOutcome.INSTALLED


def test_an_invalidation_of_another_key_does_not_void_a_read() -> None:
    near = make_near()
    ticket = near.begin(key(1))
    near.invalidate(key(2))

    _, outcome = near.settle(ticket, raw_of(Val(1, "a")), GEN, Decoder())

    assert outcome is FillOutcome.INSTALLED


@pytest.mark.parametrize(
    "event",
    ["flushed", "link_lost", "generation_changed", "breaker_opened"],
)
def test_a_drop_voids_every_read_out(event: str) -> None:
    near = make_near()
    ticket = near.begin(key(1))
    if event == "flushed":
        near.flushed()
    elif event == "link_lost":
        near.link_lost()
        near.link_established()
    elif event == "generation_changed":
        near.on_tier_event(TierEvent.GENERATION_CHANGED)
    else:
        near.on_tier_event(TierEvent.BREAKER_OPENED)
        near.on_tier_event(TierEvent.BREAKER_CLOSED)

    _, outcome = near.settle(ticket, raw_of(Val(1, "a")), GEN, Decoder())

    assert outcome is not FillOutcome.INSTALLED
    assert near.get(key(1), GEN) is None


def test_of_two_reads_of_one_key_only_those_begun_after_the_invalidation_install() -> None:
    near = make_near()
    early = near.begin(key(1))
    near.invalidate(key(1))
    late = near.begin(key(1))

    _, late_outcome = near.settle(late, raw_of(Val(2, "new")), GEN, Decoder())
    _, early_outcome = near.settle(early, raw_of(Val(1, "old")), GEN, Decoder())

    assert (late_outcome, early_outcome) == (FillOutcome.INSTALLED, FillOutcome.RACED)
    assert near.get(key(1), GEN) is None  # the early read's bytes replaced it, untrusted


def test_tickets_are_released_whether_the_read_settles_or_fails() -> None:
    near = make_near()
    settled = near.begin(key(1))
    failed = near.begin(key(2))
    near.settle(settled, raw_of(Val(1, "a")), GEN, Decoder())
    near.finish(failed)  # the GET raised: the caller releases
    near.finish(failed)  # idempotent

    def corrupt(raw: bytes) -> Val | None:
        raise ValueError("corrupt")

    with pytest.raises(ValueError):
        near.settle(near.begin(key(3)), b"junk", GEN, corrupt)

    assert near.keys_with_open_tickets == 0


# ------------------------------------------------------------ drops


def test_losing_the_link_drops_everything_and_stops_serving_until_re_established() -> None:
    near = make_near()
    fill(near, 1, Val(1, "a"))

    near.link_lost()

    assert len(near) == 0
    assert not near.serving
    assert fill(near, 1, Val(1, "a")) is FillOutcome.NOT_SERVING
    near.link_established()
    assert near.get(key(1), GEN) is None  # kept for decoding only, never served
    assert fill(near, 1, Val(1, "a")) is FillOutcome.INSTALLED
    assert near.get(key(1), GEN) is not None


def test_a_flush_drops_everything_but_keeps_serving() -> None:
    near = make_near()
    fill(near, 1, Val(1, "a"))

    near.flushed()

    assert len(near) == 0
    assert near.serving


def test_tier_events_from_the_redis_tier_drop_and_suspend_the_near_cache() -> None:
    state = TierState(CircuitBreaker(1, 3600.0), DirtyUsers(10))
    near = make_near()
    state.subscribe(near.on_tier_event)
    state.set_generation(GEN)
    fill(near, 1, Val(1, "a"))

    state.set_generation(GEN + 1)
    assert len(near) == 0 and near.serving

    fill(near, 1, Val(1, "a"), gen=GEN + 1)
    state.redis_failed(ConnectionError("down"))  # threshold 1: the breaker opens
    assert len(near) == 0 and not near.serving

    state.close_breaker()
    assert near.serving


def test_an_invalidation_evicts_only_its_key() -> None:
    near = make_near()
    fill(near, 1, Val(1, "a"))
    fill(near, 2, Val(1, "b"))

    near.invalidated([EntityKey(CONTEXT_FAMILY, 1, GEN)])

    assert near.get(key(1), GEN) is None
    assert near.get(key(2), GEN) is not None


# ------------------------------------------------------- the decoded memo


def test_byte_identical_bytes_reuse_the_decoded_value() -> None:
    near = make_near(serving=False)  # the memo works with the link down too
    decoder = Decoder()
    raw = raw_of(Val(1, "a"))
    first, _ = near.settle(near.begin(key(1)), raw, GEN, decoder)
    second, _ = near.settle(near.begin(key(1)), raw, GEN, decoder)
    third, _ = near.settle(near.begin(key(1)), raw_of(Val(2, "b")), GEN, decoder)

    assert decoder.calls == 2
    assert second is first
    assert third == Val(2, "b")


def test_a_marker_read_evicts_the_entry_and_keeps_nothing() -> None:
    near = make_near()
    fill(near, 1, Val(1, "a"))

    value, outcome = near.settle(near.begin(key(1)), b"marker", GEN, Decoder())

    assert (value, outcome) == (None, FillOutcome.MARKER)
    assert key(1) not in near


# ------------------------------------------------------------- re-checks


def test_a_sampled_fraction_of_hits_is_handed_to_the_re_check() -> None:
    every: list[tuple[NearKey, NearEntry[Val]]] = []
    none: list[tuple[NearKey, NearEntry[Val]]] = []
    always = make_near(recheck_fraction=1.0, rechecked=every)
    never = make_near(recheck_fraction=0.0, rechecked=none)
    for near in (always, never):
        fill(near, 1, Val(1, "a"))
        for _ in range(10):
            near.get(key(1), GEN)

    assert len(every) == 10 and every[0][0] == key(1) and every[0][1].version == 1
    assert none == []


def test_sampled_hits_go_to_the_re_check_of_their_own_family() -> None:
    contexts: list[NearKey] = []
    namespaces: list[NearKey] = []
    near = make_near(recheck_fraction=1.0)

    def contexts_recheck(k: NearKey, _e: NearEntry[Any]) -> None:
        contexts.append(k)

    def namespaces_recheck(k: NearKey, _e: NearEntry[Any]) -> None:
        namespaces.append(k)

    near.set_recheck(CONTEXT_FAMILY, contexts_recheck)
    near.set_recheck(NAMESPACE_FAMILY, namespaces_recheck)
    digest = namespace_digest("users.1")
    fill(near, 1, Val(1, "a"))
    ticket = near.begin((NAMESPACE_FAMILY, digest))
    near.settle(ticket, raw_of(Val(5, "n")), GEN, Decoder())

    near.get(key(1), GEN)
    near.get((NAMESPACE_FAMILY, digest), GEN)
    near.remove_recheck(NAMESPACE_FAMILY, contexts_recheck)  # not the one registered
    near.get((NAMESPACE_FAMILY, digest), GEN)
    near.remove_recheck(NAMESPACE_FAMILY, namespaces_recheck)  # that family's store closed
    near.get((NAMESPACE_FAMILY, digest), GEN)

    assert contexts == [key(1)]
    assert namespaces == [(NAMESPACE_FAMILY, digest)] * 2


def test_families_share_one_bound_and_one_drop() -> None:
    near = make_near(max_entries=2)
    digest = namespace_digest("users.1")
    fill(near, 1, Val(1, "a"))
    near.settle(near.begin((NAMESPACE_FAMILY, digest)), raw_of(Val(1, "n")), GEN, Decoder())
    fill(near, 2, Val(1, "b"))  # the least recently used goes, whatever its family

    assert key(1) not in near and (NAMESPACE_FAMILY, digest) in near and key(2) in near
    near.on_tier_event(TierEvent.GENERATION_CHANGED)
    assert len(near) == 0


def test_an_invalidated_namespace_key_evicts_that_namespace_only() -> None:
    near = make_near()
    one, two = namespace_digest("a"), namespace_digest("b")
    for digest in (one, two):
        near.settle(near.begin((NAMESPACE_FAMILY, digest)), raw_of(Val(1, "n")), GEN, Decoder())
    fill(near, 1, Val(1, "a"))

    near.invalidated([EntityKey(NAMESPACE_FAMILY, one, GEN)])

    assert (NAMESPACE_FAMILY, one) not in near
    assert (NAMESPACE_FAMILY, two) in near and key(1) in near


def test_expiring_an_entry_evicts_only_the_one_judged() -> None:
    near = make_near()
    fill(near, 1, Val(1, "a"))
    judged = near.get(key(1), GEN)
    assert judged is not None
    fill(near, 1, Val(2, "b"))  # replaced meanwhile

    assert not near.expire(key(1), judged)
    assert near.expire(key(1))
    assert near.get(key(1), GEN) is None


def test_a_re_check_evicts_only_the_entry_it_judged() -> None:
    near = make_near()
    fill(near, 1, Val(1, "a"))
    judged = near.get(key(1), GEN)
    assert judged is not None
    fill(near, 1, Val(2, "b"))  # replaced meanwhile

    assert not near.evict_mismatch(key(1), judged)
    assert near.get(key(1), GEN) is not None


# ----------------------------------------------------------------- bounds


def test_the_entry_bound_evicts_the_least_recently_used() -> None:
    near = make_near(max_entries=3)
    for user in (1, 2, 3):
        fill(near, user, Val(1, str(user)))
    near.get(key(1), GEN)  # 1 is now the most recently used

    fill(near, 4, Val(1, "4"))

    assert [u for u in (1, 2, 3, 4) if key(u) in near] == [1, 3, 4]


def test_the_byte_bound_counts_encoded_sizes() -> None:
    near = make_near(max_bytes=1000)
    for user in range(5):
        fill(near, user, Val(1, "x"), size=300)

    assert len(near) == 3
    assert near.bytes_used == 900


def test_a_value_larger_than_the_whole_bound_is_not_kept() -> None:
    near = make_near(max_bytes=100)

    assert fill(near, 1, Val(1, "x"), size=101) is FillOutcome.TOO_LARGE
    assert len(near) == 0


def test_memory_stays_within_its_bounds_under_a_zipf_load_of_many_users() -> None:
    """50 000 users, Zipf(1.0) reads, 5% writes, values of 200 B to 8 KiB."""
    rnd = random.Random(7)
    users = 50_000
    weights = [1 / rank for rank in range(1, users + 1)]
    sizes = [rnd.choice((200, 1000, 3000, 8000)) for _ in range(users)]
    max_entries, max_bytes = 2_000, 3_000_000
    near = make_near(max_entries=max_entries, max_bytes=max_bytes)
    hits = 0
    stream = rnd.choices(range(users), weights=weights, k=60_000)
    for step, user in enumerate(stream):
        if step % 20 == 0:
            near.invalidate(key(user))
        elif near.get(key(user), GEN) is not None:
            hits += 1
        else:
            fill(near, user, Val(1, "x"), size=sizes[user])
        assert len(near) <= max_entries
        assert near.bytes_used <= max_bytes

    held = [near.peek(key(u)) for u in range(users)]
    assert near.bytes_used == sum(len(e.raw) for e in held if e is not None)
    assert hits > 0.3 * len(stream)  # it does serve: Zipf's head stays in


# ------------------------------------------------- phase 2: the load path's needs


def test_an_entry_older_than_the_callers_floor_is_evicted_not_served() -> None:
    rechecked: list[tuple[NearKey, NearEntry[Val]]] = []
    near = make_near(recheck_fraction=1.0, rechecked=rechecked)
    fill(near, 1, Val(3, "a"))

    assert near.get(key(1), GEN, floor=4) is None  # this process acknowledged v4
    assert key(1) not in near
    assert rechecked == []  # only what is served is sampled
    fill(near, 1, Val(4, "b"))
    assert near.get(key(1), GEN, floor=4) is not None


def test_the_memo_alone_decodes_once_and_never_serves_what_it_kept() -> None:
    near = make_near()
    decoder = Decoder()
    raw = raw_of(Val(1, "a"))

    first = near.decode(key(1), raw, GEN, decoder)
    second = near.decode(key(1), raw, GEN, decoder)

    assert first == Val(1, "a") and second is first and decoder.calls == 1
    assert near.get(key(1), GEN) is None  # no ticket vouched for it
    value, outcome = near.settle(near.begin(key(1)), raw, GEN, decoder)
    assert value is first and outcome is FillOutcome.INSTALLED and decoder.calls == 1
    assert near.get(key(1), GEN) is not None


def test_a_marker_through_the_memo_keeps_nothing() -> None:
    near = make_near()

    assert near.decode(key(1), b"marker", GEN, Decoder()) is None
    assert key(1) not in near


def test_an_entry_keeps_a_readers_encoding_once_and_counts_it_in_its_size() -> None:
    near = make_near(max_bytes=1000)
    fill(near, 1, Val(1, "a"), size=100)
    entry = near.get(key(1), GEN)
    assert entry is not None
    made: list[bytes] = []

    def encode() -> bytes:
        made.append(b"j" * 50)
        return made[-1]

    assert entry.encoded(encode) == entry.encoded(encode) == b"j" * 50
    assert len(made) == 1
    assert near.bytes_used == 150


def test_an_encoding_that_would_not_fit_or_of_an_entry_gone_is_not_kept() -> None:
    near = make_near(max_bytes=120)
    fill(near, 1, Val(1, "a"), size=100)
    entry = near.get(key(1), GEN)
    assert entry is not None

    assert entry.encoded(lambda: b"j" * 50) == b"j" * 50  # 150 > 120: handed out, not kept
    assert entry.encoding is None and near.bytes_used == 100
    near.invalidate(key(1))
    assert entry.encoded(lambda: b"k" * 5) == b"k" * 5  # evicted: nothing to keep it in
    assert entry.encoding is None and near.bytes_used == 0


def test_keeping_an_encoding_evicts_the_least_recently_used_others_to_fit() -> None:
    near = make_near(max_bytes=300)
    fill(near, 1, Val(1, "a"), size=100)
    fill(near, 2, Val(1, "b"), size=100)
    fill(near, 3, Val(1, "c"), size=100)
    entry = near.get(key(3), GEN)
    assert entry is not None

    entry.encoded(lambda: b"j" * 50)

    assert key(1) not in near and key(2) in near and key(3) in near
    assert near.bytes_used == 250


def test_news_of_another_processs_turnover_drops_everything() -> None:
    near = make_near()
    fill(near, 1, Val(1, "a"))
    ticket = near.begin(key(2))

    near.epoch_changed()

    assert len(near) == 0 and near.serving  # the link is whole: news, not a loss
    assert not near.valid(ticket)
