"""Concurrent loads of one user share one Redis GET (the burst case of invariant 5)."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis

from memlayer.cache import ContextCache
from memlayer.records import LoadSource, MemoryContext
from memlayer.settings import Settings


class GatedRedis:
    """fakeredis whose GETs are counted and, when ``gate`` is set, wait for it."""

    def __init__(self) -> None:
        self._inner = fakeredis.FakeAsyncRedis()
        self.gets = 0
        self.gate: asyncio.Event | None = None
        self.get_started = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get(self, key: Any) -> Any:
        self.gets += 1
        self.get_started.set()
        if self.gate is not None:
            await self.gate.wait()
        return await self._inner.get(key)


async def _warm_cache(client: GatedRedis) -> tuple[ContextCache, Any]:
    cache = ContextCache(client, Settings())
    context = MemoryContext.empty(3, version=2)

    async def loader(_floor: object = None) -> MemoryContext:
        return context

    await cache.load(3, loader)  # fill
    assert (await cache.load(3, loader)).source is LoadSource.CACHE
    return cache, loader


async def test_a_burst_of_loads_of_one_user_issues_one_get():
    client = GatedRedis()
    cache, loader = await _warm_cache(client)
    client.gets, client.gate = 0, asyncio.Event()
    burst = [asyncio.create_task(cache.load(3, loader)) for _ in range(300)]
    await client.get_started.wait()
    client.gate.set()
    results = await asyncio.gather(*burst)
    assert client.gets == 1
    assert {r.source for r in results} == {LoadSource.CACHE}
    await cache.aclose()


async def test_when_the_reading_load_is_cancelled_the_others_still_get_the_value():
    client = GatedRedis()
    cache, loader = await _warm_cache(client)
    client.gets, client.gate, client.get_started = 0, asyncio.Event(), asyncio.Event()
    leader = asyncio.create_task(cache.load(3, loader))
    await client.get_started.wait()
    joiners = [asyncio.create_task(cache.load(3, loader)) for _ in range(10)]
    await asyncio.sleep(0)  # let the joiners reach the shared read
    leader.cancel()
    client.gate.set()
    results = await asyncio.gather(*joiners)
    assert {r.source for r in results} == {LoadSource.CACHE}
    assert leader.cancelled()
    await cache.aclose()
