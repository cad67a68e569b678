"""Helpers of the cache contract suite (a uniquely named module, importable from tests)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fakeredis
from prometheus_client import REGISTRY

from memlayer.cache import CacheHooks, ContextCache, make_redis_client
from memlayer.cache import keys as cache_keys
from memlayer.records import EntityRecord, MemoryContext, MemoryRecord
from memlayer.settings import Settings

REDIS_URL = os.environ.get("MEMLAYER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def metric(name: str, **labels: str) -> float:
    """Current value of a metric sample (tests compare deltas: the registry is global)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def make_context(user_id: int, version: int, memories: int = 2) -> MemoryContext:
    seoul = timezone(timedelta(hours=9))
    base = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=seoul)
    return MemoryContext(
        user_id=user_id,
        version=version,
        memories=tuple(
            MemoryRecord(
                id=version * 100 + i,
                summary=f"v{version} 대화 요약 #{i} — café ☕",
                intent="recommend" if i % 2 else None,
                entities=("서울", "Busan"),
                message_count=i + 1,
                created_at=base - timedelta(minutes=i),
                chat_session_id=f"cs-{i}" if i else None,
            )
            for i in range(memories)
        ),
        preferences={"language": "ko", "diet": ["vegan", 1, 2.5, None, True]},
        entities=(EntityRecord("city", "서울", version + 3, datetime(2024, 5, 1, tzinfo=UTC)),),
    )


class CountingLoader:
    """A loader that records how often the database would have been queried."""

    def __init__(self, context: MemoryContext) -> None:
        self.context = context
        self.calls = 0

    async def __call__(self) -> MemoryContext:
        self.calls += 1
        await asyncio.sleep(0)  # let other loads pile up behind this one
        return self.context


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


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port (and port+10000 for a cluster bus when asked)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not with_bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    """Bounded polling for an external process to become ready (not test synchronisation)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")
