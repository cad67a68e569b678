"""`memlayer cache stats|invalidate|warm` on real Postgres and Redis."""

from __future__ import annotations

import asyncio
import uuid

from memlayer import cachectl
from memlayer.cache import ContextCache, RequestCounts, make_redis_client
from memlayer.cache.keys import scan_pattern
from memlayer.memory.service import LongTermMemoryService
from memlayer.records import LoadSource
from tests.support.live_server import LiveServer


async def test_warm_invalidate_and_stats(settings, database, make_user, capsys):
    own = settings.model_copy(update={"cache_key_prefix": f"ml-cli-{uuid.uuid4().hex[:8]}"})
    client = make_redis_client(own)
    cache = ContextCache(client, own)
    service = LongTermMemoryService(database, own, cache)
    users = [await make_user() for _ in range(3)]
    plain = LongTermMemoryService(database, own)  # writes without touching this prefix
    for uid in users:
        await plain.save_conversation_memory(uid, None, f"memory of {uid}")
    try:
        # `--top` far above this run's users: warm whatever is most recent, ours included.
        assert await cachectl.warm(own, top=100_000) == 0
        out = capsys.readouterr().out
        assert "loaded from Postgres" in out
        for uid in users:
            assert (await service.load_context(uid)).source is LoadSource.CACHE

        assert await cachectl.invalidate(own, users[0]) == 0
        assert f"user {users[0]}" in capsys.readouterr().out
        assert (await service.load_context(users[0])).source is LoadSource.DATABASE
        assert (await service.load_context(users[0])).source is LoadSource.CACHE

        assert await cachectl.stats(own, server_url="http://127.0.0.1:9") == 0
        stats = capsys.readouterr().out
        assert "redis               up" in stats and "keys" in stats
        assert "no memlayer server answers" in stats
    finally:
        await cache.aclose()
        keys = [k async for k in client.scan_iter(match=scan_pattern(own.cache_key_prefix))]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_stats_show_the_serving_process_hit_ratio_with_its_lookups(
    settings, database, make_user, capsys
):
    own = settings.model_copy(update={"cache_key_prefix": f"ml-cli-{uuid.uuid4().hex[:8]}"})
    server = await LiveServer(own).start()
    try:
        service = server.services.memory
        uid = await make_user()
        await service.load_context(uid)  # a miss, then a hit: lookups the server counted
        await service.load_context(uid)

        # Its own thread and loop, as the command runs: it asks the server over HTTP.
        exit_code = await asyncio.to_thread(
            asyncio.run, cachectl.stats(own, server_url=server.base_url)
        )
        assert exit_code == 0
    finally:
        await server.stop()
    served = RequestCounts.now()  # the server ran in this process: the same counters
    line = next(x for x in capsys.readouterr().out.splitlines() if "hit ratio" in x)
    assert f"{served.hit_ratio:.2%}" in line
    assert f"of {served.lookups:,.0f} lookups" in line and server.base_url in line
