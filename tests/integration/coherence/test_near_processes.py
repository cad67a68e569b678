"""Two real ``memlayer serve`` processes with their near-caches on: a write acknowledged by
one evicts the other's entry, and the other serves the new version at once (the lag is
measured; ``memlayer bench-invalidation`` and the lag histogram report it precisely).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from memlayer.settings import Settings
from tests.support.api_client import bearer, register
from tests.support.server_process import ServerProcess

CONTEXT = "/api/v1/memory/context"
LAG_BOUND_S = 1.0  # generous (a shared 2-core machine); typical is well under 10 ms
READS_TO_WARM = 10


def evictions(metrics_text: str, reason: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name == "memlayer_near_cache_evictions_total" and s.labels.get("reason") == reason
    )


@pytest.fixture
async def processes(coherence_settings: Settings) -> AsyncIterator[tuple[ServerProcess, ...]]:
    own = coherence_settings.model_copy(update={"near_cache_enabled": True})
    a = await ServerProcess(own, ready_path="/readyz").start()
    try:
        b = await ServerProcess(own, ready_path="/readyz").start()
    except BaseException:
        await a.stop()
        raise
    yield a, b
    await b.stop()
    await a.stop()


async def test_a_write_through_one_process_evicts_the_others_near_cache_entry(
    processes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = processes
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=20) as writer,
        httpx.AsyncClient(base_url=b.base_url, timeout=20) as reader,
    ):
        user = await register(writer)
        headers = bearer(user["access_token"])

        async def read() -> dict:
            response = await reader.get(CONTEXT, headers=headers)
            assert response.status_code == 200, response.text
            return response.json()

        # A miss, a Redis read that settles into B's near-cache, then near hits. (A read
        # whose GET was out when the fill's own invalidation arrived is not settled.)
        sources = [(await read())["source"] for _ in range(READS_TO_WARM)]
        assert sources[-2:] == ["near", "near"], sources
        invalidated = evictions((await reader.get("/metrics")).text, "invalidated")

        forgotten = await writer.delete("/api/v1/memory", headers=headers)
        assert forgotten.status_code == 200, forgotten.text
        acknowledged = time.monotonic()
        version = forgotten.json()["version"]

        seen = []
        while (current := await read())["version"] < version:  # reads pace themselves
            seen.append(current["source"])
            assert time.monotonic() - acknowledged < LAG_BOUND_S, seen
        lag = time.monotonic() - acknowledged
        print(f"acknowledged by A -> served by B: {lag * 1000:.1f} ms ({len(seen)} older reads)")

        assert current["source"] == "cache"  # read from Redis again, not from memory
        assert evictions((await reader.get("/metrics")).text, "invalidated") > invalidated
        later = [(await read())["source"] for _ in range(3)]
        assert later[-1] == "near", later  # and served from memory again
