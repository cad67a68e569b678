"""A real redis-py client whose GETs are counted and, when asked, held after Redis answered.

Holding the reply of a GET that has already executed is how tests stage the near-cache's
fill/invalidation race: the value read is the old one, and a write (and its invalidation)
happens before the reader gets to settle it. Everything else goes to the real client.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis


class GatedRedis:
    def __init__(self, inner: Redis) -> None:
        self._inner = inner
        self.gets = 0
        self.hold: asyncio.Event | None = None  # set: replies flow; unset: held
        self.answered = asyncio.Event()  # a held GET has its reply from Redis

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get(self, key: Any) -> Any:
        self.gets += 1
        raw = await self._inner.get(key)
        hold = self.hold
        if hold is not None and not hold.is_set():
            self.answered.set()
            await hold.wait()
        return raw

    async def aclose(self) -> None:
        await self._inner.aclose()
