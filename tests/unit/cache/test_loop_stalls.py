"""A stalled event loop is not a dead Redis: the breaker must not open because of it.

The loop is stalled on purpose with a blocking ``time.sleep``: that IS the scenario
(CPU-bound work holding the loop), not a way of waiting for something.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import fakeredis
import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from memlayer.cache import ContextCache
from memlayer.cache import metrics as cache_metrics
from memlayer.cache.errors import LoopStalled
from memlayer.cache.store import Deadline
from memlayer.metrics import current
from memlayer.records import LoadSource, MemoryContext
from memlayer.settings import Settings


async def _hold_the_loop(seconds: float) -> None:
    await asyncio.sleep(0)
    time.sleep(seconds)  # noqa: ASYNC251  (the stall under test)


async def test_deadline_expiring_late_because_the_loop_stalled_is_loop_stalled():
    never = asyncio.get_running_loop().create_future()
    with pytest.raises(LoopStalled) as raised:
        async with Deadline(0.05):
            await asyncio.gather(never, _hold_the_loop(0.2))
    assert raised.value.late_s > 0.1


async def test_deadline_expiring_on_time_is_a_plain_timeout():
    never = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError) as raised:
        async with Deadline(0.05):
            await never
    assert not isinstance(raised.value, LoopStalled)


async def test_deadline_expiring_on_time_while_the_loop_is_saturated_is_loop_stalled():
    """The timer runs nearly on time (less than half the budget late), but from then on
    every turn of the loop is long, as with many requests in flight: a reply may have
    been waiting behind them, so Redis is not to blame."""
    loop = asyncio.get_running_loop()
    turns_left = 4

    def a_long_turn() -> None:  # the work of many requests, in one turn of the loop
        nonlocal turns_left
        time.sleep(0.015)
        turns_left -= 1
        if turns_left:
            loop.call_soon(a_long_turn)

    never = loop.create_future()
    with pytest.raises(LoopStalled) as raised:
        async with Deadline(0.05):
            loop.call_later(0.05, a_long_turn)  # due with the deadline
            await never
    assert raised.value.late_s < 0.025, "the timer itself was on time"


class StallingRedis:
    """fakeredis whose context GETs, once ``stalling`` is set, hold the loop past the timeout.

    Then it fails the way redis-py does when its socket timer finally runs: with its own
    TimeoutError, long after the deadline was due.
    """

    def __init__(self) -> None:
        self._inner = fakeredis.FakeAsyncRedis()
        self.stalling = False
        self.stalls_left = 0  # stall only this many more context GETs (when not stalling)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get(self, key: Any) -> Any:
        context_read = key.endswith(b":ctx" if isinstance(key, bytes) else ":ctx")
        if context_read and not self.stalling and self.stalls_left > 0:
            self.stalls_left -= 1
            await _hold_the_loop(0.15)
            raise RedisTimeoutError("Timeout reading from socket")
        if self.stalling and context_read:
            # Context reads only: the cache's background generation refresh is not a load.
            await _hold_the_loop(0.15)
            raise RedisTimeoutError("Timeout reading from socket")
        return await self._inner.get(key)


def _stalls() -> float:
    return current(cache_metrics.LOOP_STALLS)


async def test_loads_during_loop_stalls_fall_back_without_opening_the_breaker():
    client = StallingRedis()
    settings = Settings(redis_timeout_ms=50, breaker_failure_threshold=3)
    cache = ContextCache(client, settings)
    context = MemoryContext.empty(7, version=1)

    async def loader(_floor: object = None) -> MemoryContext:
        return context

    assert (await cache.load(7, loader)).source is LoadSource.DATABASE  # cold: filled
    assert (await cache.load(7, loader)).source is LoadSource.CACHE
    client.stalling = True
    before = _stalls()
    for _ in range(5):
        result = await cache.load(7, loader)
        assert result.source is LoadSource.DATABASE and result.context == context
    # At least ours: any other cache alive on this loop (a session-wide live server) sees
    # the same stalls of the one loop and counts them too.
    assert _stalls() - before >= 5
    assert not cache.breaker_open, "five stalls of our own loop are not a Redis outage"
    client.stalling = False
    assert (await cache.load(7, loader)).source is LoadSource.CACHE
    await cache.aclose()


async def test_a_get_late_only_because_of_one_stall_is_asked_again_and_hits():
    client = StallingRedis()
    cache = ContextCache(client, Settings(redis_timeout_ms=50))
    context = MemoryContext.empty(8, version=1)
    loads = 0

    async def loader(_floor: object = None) -> MemoryContext:
        nonlocal loads
        loads += 1
        return context

    await cache.load(8, loader)  # cold: filled
    client.stalls_left = 1
    before = _stalls()
    result = await cache.load(8, loader)
    assert result.source is LoadSource.CACHE and result.context == context
    assert loads == 1, "a stall of our own loop costs a second GET, not a database load"
    assert _stalls() - before >= 1
    await cache.aclose()
