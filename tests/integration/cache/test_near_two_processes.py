"""Two processes: a write in one evicts the other's near-cache entry, measured.

The bound asserted is generous (a shared 2-core machine); ``memlayer bench-invalidation``
reports the real lag distribution.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

from memlayer.cache import keys
from memlayer.cache.codec import encode
from tests.support.contexts import make_context
from tests.support.services import base_redis_url

ROOT = Path(__file__).resolve().parents[3]
GEN = 1
LAG_BOUND_MS = 2000.0


async def test_a_write_in_one_process_evicts_the_entry_in_another() -> None:
    prefix = f"memlayer-test-{uuid.uuid4().hex[:8]}"
    url = base_redis_url()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.near_child",
        *(url, prefix, "42", str(GEN)),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdout is not None
    writer = Redis.from_url(url)
    try:
        ready = json.loads(await asyncio.wait_for(child.stdout.readline(), 30))
        assert ready == {"ready": True, "cached": True}

        sent_ns = time.time_ns()
        await writer.set(keys.context_key(prefix, 42, GEN), encode(make_context(42, version=2)))
        report = json.loads(await asyncio.wait_for(child.stdout.readline(), 40))

        assert report["evicted_ns"] is not None, "the other process never heard of the write"
        assert report["still_cached"] is False
        lag_ms = (report["evicted_ns"] - sent_ns) / 1e6
        print(f"write -> eviction in another process: {lag_ms:.2f} ms")
        assert lag_ms < LAG_BOUND_MS
        assert await asyncio.wait_for(child.wait(), 10) == 0
    finally:
        await writer.aclose()
        if child.returncode is None:
            child.kill()  # our own child, by its handle
            await child.wait()
