"""The contract suite's backend: one Redis flavour, a private key prefix, its caches.

Shared helpers (context builders, counting loaders, metrics, redis-server processes) live
in ``tests/support/``; this module holds what only the contract suite needs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import fakeredis

from memlayer.cache import CacheHooks, ContextCache, make_redis_client
from memlayer.cache import keys as cache_keys
from memlayer.settings import Settings


@dataclass
class Backend:
    """One Redis flavour plus a private key prefix; builds caches and cleans up after."""

    name: str
    url: str | None
    prefix: str = field(default_factory=lambda: f"memlayer-test-{uuid.uuid4().hex}")
    server: fakeredis.FakeServer | None = None
    clients: list[Any] = field(default_factory=list)
    caches: list[ContextCache] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": self.url,
            "cache_key_prefix": self.prefix,
            # Generous: these tests are about the protocol, not about timeouts, and the
            # 2-core box is shared with other suites.
            "redis_timeout_ms": 2000,
            "redis_connect_timeout_ms": 2000,
            "cache_fill_wait_ms": 5000,
            "cache_fill_poll_ms": 5,
        }
        values.update(overrides)
        return Settings(**values)

    def client(self) -> Any:
        if self.server is not None:
            client = fakeredis.FakeAsyncRedis(server=self.server)
        else:
            client = make_redis_client(self.settings())
        self.clients.append(client)
        return client

    def cache(self, hooks: CacheHooks | None = None, **overrides: Any) -> ContextCache:
        cache = ContextCache(self.client(), self.settings(**overrides), hooks=hooks)
        self.caches.append(cache)
        return cache

    def key(self, user_id: int, cache: ContextCache) -> str:
        return cache_keys.context_key(self.prefix, user_id, cache.generation or 0)

    async def raw(self, user_id: int, cache: ContextCache) -> bytes | None:
        return await self.clients[0].get(self.key(user_id, cache))

    async def aclose(self) -> None:
        for cache in self.caches:
            await cache.aclose()
        if self.clients:
            client = self.clients[0]
            async for key in client.scan_iter(match=cache_keys.scan_pattern(self.prefix)):
                await client.delete(key)
        for client in self.clients:
            await client.aclose()
