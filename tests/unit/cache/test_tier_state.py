"""Every change of what the process believes about Redis is announced, in order.

A near-cache in front of this tier (or anything else that must not outlive a
generation or an open breaker) subscribes here instead of polling.
"""

from __future__ import annotations

import fakeredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from memlayer.cache import ContextCache
from memlayer.cache import metrics as cache_metrics
from memlayer.cache.breaker import CircuitBreaker
from memlayer.cache.dirty import DirtyUsers
from memlayer.cache.errors import LoopStalled, SharedReadFailed
from memlayer.cache.state import TierEvent, TierState
from memlayer.metrics import current
from memlayer.records import LoadSource, MemoryContext
from memlayer.settings import Settings


def _state(threshold: int = 2) -> tuple[TierState, list[TierEvent]]:
    state = TierState(CircuitBreaker(threshold, 3600.0), DirtyUsers(10))
    seen: list[TierEvent] = []
    state.subscribe(seen.append)
    return state, seen


def test_generation_changes_are_announced_once_each() -> None:
    state, seen = _state()
    state.set_generation(0)
    state.set_generation(0)  # not a change
    state.set_generation(1)
    assert seen == [TierEvent.GENERATION_CHANGED, TierEvent.GENERATION_CHANGED]
    assert state.generation == 1


def test_the_breaker_opening_and_closing_are_announced() -> None:
    state, seen = _state(threshold=2)
    state.redis_failed(ConnectionError())
    assert seen == []
    state.redis_failed(ConnectionError())
    assert seen == [TierEvent.BREAKER_OPENED] and not state.breaker.closed
    assert state.probe_due(force=True)
    state.close_breaker()
    assert seen == [TierEvent.BREAKER_OPENED, TierEvent.BREAKER_CLOSED]


def test_failures_that_are_not_redis_s_own_never_count() -> None:
    state, seen = _state(threshold=1)
    state.redis_failed(SharedReadFailed())  # counted by the load that issued the read
    state.redis_failed(LoopStalled(0.2))  # our event loop was late
    assert state.breaker.closed and seen == []


def test_periodic_checks_count_unreachable_redis_but_not_their_own_timeouts() -> None:
    state, seen = _state(threshold=1)
    before = current(cache_metrics.BACKGROUND_TIMEOUTS)
    state.background_check_failed(TimeoutError())  # a deadline under a busy loop
    state.background_check_failed(RedisTimeoutError("Timeout reading from socket"))
    assert state.breaker.closed and seen == []
    assert current(cache_metrics.BACKGROUND_TIMEOUTS) - before == 2
    state.background_check_failed(RedisConnectionError("Connection refused"))
    assert seen == [TierEvent.BREAKER_OPENED]


def test_a_dirty_user_bypasses_redis_until_marked_clean() -> None:
    state, _ = _state()
    state.mark_dirty(5, 3)
    assert state.bypasses(5) and not state.bypasses(6)
    state.mark_clean(5, 3)
    assert not state.bypasses(5) and not state.dirty.pending


async def test_the_cache_announces_what_its_loads_find_out() -> None:
    server = fakeredis.FakeServer()
    cache = ContextCache(
        fakeredis.FakeAsyncRedis(server=server),
        Settings(breaker_failure_threshold=1, breaker_cooldown_seconds=3600.0),
    )
    seen: list[TierEvent] = []
    cache.subscribe(seen.append)
    context = MemoryContext.empty(1, 1)

    async def loader(_floor: object = None) -> MemoryContext:
        return context

    assert (await cache.load(1, loader)).source is LoadSource.DATABASE
    assert seen == [TierEvent.GENERATION_CHANGED]  # learnt generation 0
    server.connected = False
    assert (await cache.load(1, loader)).source is LoadSource.DATABASE
    assert seen[-1] is TierEvent.BREAKER_OPENED
    server.connected = True
    assert await cache.recover()
    assert seen[-1] is TierEvent.BREAKER_CLOSED
    await cache.aclose()
