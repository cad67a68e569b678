"""Two real processes with a store each, on one Postgres and one Redis: each sees the
other's writes at once, and a process cut off from Redis is seen within the coherence
bound (its outbox rows make this process's drainer install markers)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from memlayer.settings import Settings
from memlayer.store import MemlayerStore, open_store
from memlayer.store import metrics as store_metrics
from tests.support.metrics import current
from tests.support.store import near_ready
from tests.support.tcp_proxy import ChaosProxy

ROOT = Path(__file__).resolve().parents[3]


class Child:
    """The other process (``tests.support.store_child``), one JSON line per command."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    async def ask(self, **command: Any) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write((json.dumps(command) + "\n").encode())
        await self._process.stdin.drain()
        answer: dict[str, Any] = json.loads(
            await asyncio.wait_for(self._process.stdout.readline(), 30)
        )
        return answer


@asynccontextmanager
async def child_process(settings: Settings) -> AsyncIterator[Child]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MEMLAYER_DATABASE_URL": str(settings.database_url),
        "MEMLAYER_REDIS_URL": str(settings.redis_url),
        "MEMLAYER_CACHE_KEY_PREFIX": settings.cache_key_prefix,
        "MEMLAYER_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.store_child",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 60))
        assert ready == {"ready": True}
        yield Child(process)
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()  # the child we started, by its handle
            await process.wait()


async def _value(store: MemlayerStore, key: str) -> Any:
    item = await store.aget(("two", "processes"), key)
    return item.value if item is not None else None


async def test_each_process_reads_the_other_s_write_at_once(cached_settings: Settings) -> None:
    """The Redis tier: a write is in Redis before it is acknowledged. (With the near-cache
    on, the other process hears of it by Redis's invalidation: the test below.)"""
    redis_tier_only = cached_settings.model_copy(update={"near_cache_enabled": False})
    async with open_store(redis_tier_only) as here, child_process(cached_settings) as there:
        await here.aput(("two", "processes"), "k", {"v": 1})
        assert await there.ask(op="get", ns=["two", "processes"], key="k") == {"value": {"v": 1}}
        assert await _value(here, "k") == {"v": 1}  # cached here now

        assert await there.ask(op="put", ns=["two", "processes"], key="k", value={"v": 2})
        assert await _value(here, "k") == {"v": 2}  # written through before it was acked
        await here.adelete(("two", "processes"), "k")
        assert await there.ask(op="get", ns=["two", "processes"], key="k") == {"value": None}
        assert await there.ask(op="search", ns=["two", "processes"]) == {"keys": []}


async def test_a_write_in_another_process_evicts_the_near_cache_entry_here(
    cached_settings: Settings,
) -> None:
    """The near-cache on both sides: this process serves the namespace from memory until
    Redis's invalidation of the other process's write arrives (the lag is printed), then
    the new value, well within the coherence bound."""
    bound = cached_settings.coherence_bound_ms / 1000
    async with open_store(cached_settings) as here, child_process(cached_settings) as there:
        link = await near_ready(here)
        await here.aput(("two", "processes"), "k", {"v": 1})
        await link.barrier()
        assert await _value(here, "k") == {"v": 1}  # read from Redis under a fill ticket
        near = current(store_metrics.LOOKUP_NEAR)
        assert await _value(here, "k") == {"v": 1}
        assert current(store_metrics.LOOKUP_NEAR) == near + 1, "served from process memory"

        loop = asyncio.get_running_loop()
        assert await there.ask(op="put", ns=["two", "processes"], key="k", value={"v": 2})
        acked = loop.time()
        while await _value(here, "k") != {"v": 2}:
            assert loop.time() - acked <= bound, f"still v1 {bound} s after the write"
            await asyncio.sleep(0.001)  # polling: the deadline is the assertion
        print(f"near-cache entry replaced {1000 * (loop.time() - acked):.2f} ms after the ack")
        for _ in range(20):
            assert await _value(here, "k") == {"v": 2}


async def test_a_process_cut_off_from_redis_is_seen_within_the_bound(
    cached_settings: Settings, redis_port: int
) -> None:
    proxy = await ChaosProxy(redis_port).start()
    theirs = cached_settings.model_copy(update={"redis_url": proxy.url})
    bound = cached_settings.coherence_bound_ms / 1000
    try:
        async with open_store(cached_settings) as here, child_process(theirs) as there:
            assert await there.ask(op="put", ns=["two", "processes"], key="k", value={"v": 1})
            assert await _value(here, "k") == {"v": 1}

            proxy.refuse()  # the other process cannot reach Redis; this one still can
            assert await there.ask(op="put", ns=["two", "processes"], key="k", value={"v": 2})
            assert await there.ask(op="get", ns=["two", "processes"], key="k") == {
                "value": {"v": 2}
            }, "the writer reads its own write"

            loop = asyncio.get_running_loop()
            acked = loop.time()
            while await _value(here, "k") != {"v": 2}:
                assert loop.time() - acked <= bound, f"still v1 {bound} s after the write"
                await asyncio.sleep(0.02)  # polling: the deadline is the assertion
            for _ in range(20):
                assert await _value(here, "k") == {"v": 2}
    finally:
        await proxy.aclose()
