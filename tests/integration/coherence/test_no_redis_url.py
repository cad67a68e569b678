"""A real database with no Redis URL refuses to start: no per-process cache stand-in.

An in-process stand-in per process would give each process its own cache, and one
process's write would never reach another's. The documented way to run without a cache
is MEMLAYER_CACHE_ENABLED=false; embedded mode (no database URL) keeps its stand-in.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from memlayer.api.services import AppServices
from memlayer.cache import NullContextCache
from memlayer.settings import MissingRedisUrl, Settings
from tests.support.redis_server import free_port


async def test_the_service_refuses_to_start_and_says_what_to_set(coherence_url: str) -> None:
    settings = Settings(database_url=coherence_url, redis_url=None, jwt_secret="x" * 32)
    with pytest.raises(MissingRedisUrl, match="MEMLAYER_REDIS_URL") as refused:
        await AppServices.start(settings)
    assert "MEMLAYER_CACHE_ENABLED=false" in str(refused.value)


async def test_with_the_cache_switched_off_it_starts_uncached(coherence_url: str) -> None:
    settings = Settings(
        database_url=coherence_url, redis_url=None, cache_enabled=False, jwt_secret="x" * 32
    )
    services = await AppServices.start(settings)
    try:
        assert isinstance(services.cache, NullContextCache)
        assert services.coherence is None
    finally:
        await services.aclose()


async def test_memlayer_serve_exits_with_the_message(coherence_url: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEMLAYER_")}
    env.update(
        MEMLAYER_DATABASE_URL=coherence_url,
        MEMLAYER_JWT_SECRET="x" * 32,
    )
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "memlayer.cli", "serve", "--port", str(free_port())),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    output = (stdout + stderr).decode()
    assert process.returncode != 0, output
    assert "MEMLAYER_REDIS_URL" in output and "MEMLAYER_CACHE_ENABLED=false" in output
