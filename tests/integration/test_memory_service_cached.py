"""LongTermMemoryService with its Redis tier, on real Postgres and real Redis.

The cache tier's own contract suite proves the protocol with a counting loader; these
tests prove the composed service: Postgres queries counted by the memory tier's metric,
versions written by real transactions.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from memlayer.cache import CacheHooks, ContextCache, make_redis_client
from memlayer.cache.keys import scan_pattern
from memlayer.memory.errors import InvalidMemory
from memlayer.memory.metrics import DB_QUERIES
from memlayer.memory.service import LongTermMemoryService
from memlayer.metrics import current
from memlayer.records import EntityInput, LoadSource
from memlayer.settings import Settings
from tests.support.cache_values import cached_version, raw_value


def _context_loads() -> float:
    return current(DB_QUERIES.labels("load_context"))


@pytest.fixture
async def cached(settings: Settings, database) -> AsyncIterator[tuple]:
    """A service with its own key prefix, so nothing else's keys are seen or removed.

    These tests are about what reaches Redis, not about timeouts: a Redis timeout of
    half a second keeps a busy 2-core box (the whole suite running) from deferring a
    write-through that the test then looks for.
    """
    own = settings.model_copy(
        update={"cache_key_prefix": f"ml-svc-{uuid.uuid4().hex[:8]}", "redis_timeout_ms": 500}
    )
    client = make_redis_client(own)
    made: list[ContextCache] = []

    def service(hooks: CacheHooks | None = None) -> LongTermMemoryService:
        cache = ContextCache(client, own, hooks=hooks)
        made.append(cache)
        return LongTermMemoryService(database, own, cache)

    yield service, client, own
    for cache in made:
        await cache.aclose()
    keys = [key async for key in client.scan_iter(match=scan_pattern(own.cache_key_prefix))]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def _cached_version(client, settings: Settings, user_id: int) -> int | None:
    return await cached_version(client, settings.cache_key_prefix, user_id)


async def test_warm_loads_never_query_postgres(cached, make_user):
    service_for, _client, _settings = cached
    service = service_for()
    uid = await make_user()
    await service.save_conversation_memory(uid, None, "강남구 아파트 시세")
    before = _context_loads()
    results = [await service.load_context(uid) for _ in range(200)]
    assert {r.source for r in results} == {LoadSource.CACHE}
    assert _context_loads() == before, "the write installed the context; no fill was needed"


async def test_500_concurrent_cold_loads_cost_one_postgres_query(cached, make_user):
    service_for, _client, _settings = cached
    service = service_for()
    uid = await make_user()
    before = _context_loads()
    results = await asyncio.gather(*(service.load_context(uid) for _ in range(500)))
    assert _context_loads() - before == 1
    assert {r.context.version for r in results} == {0}


async def test_two_processes_worth_of_services_fill_a_cold_user_once(cached, make_user):
    service_for, _client, _settings = cached
    first, second = service_for(), service_for()  # separate single-flights, one Redis
    uid = await make_user()
    before = _context_loads()
    await asyncio.gather(
        *(first.load_context(uid) for _ in range(250)),
        *(second.load_context(uid) for _ in range(250)),
    )
    assert _context_loads() - before == 1


async def test_slow_fill_never_overwrites_newer_write(cached, make_user):
    service_for, client, settings = cached
    loaded, release = asyncio.Event(), asyncio.Event()

    async def hold(user_id: int, context) -> None:
        loaded.set()
        await release.wait()

    reader = service_for(CacheHooks(before_fill=hold))
    writer = service_for()
    uid = await make_user()
    slow_load = asyncio.create_task(reader.load_context(uid))
    await loaded.wait()  # the reader holds version 0, read before the write below
    await writer.save_conversation_memory(uid, None, "newer")
    assert await _cached_version(client, settings, uid) == 1
    release.set()
    stale = await slow_load
    assert stale.context.version == 0  # what it read, served to its own caller only
    assert await _cached_version(client, settings, uid) == 1, "the stale fill was refused"
    fresh = await reader.load_context(uid)
    assert fresh.source is LoadSource.CACHE and fresh.context.memories[0].summary == "newer"


async def test_rolled_back_write_never_touches_redis(cached, make_user):
    service_for, client, settings = cached
    service = service_for()
    uid = await make_user()
    await service.save_conversation_memory(uid, None, "kept")
    before = await raw_value(client, settings.cache_key_prefix, uid)
    assert before is not None
    with pytest.raises(InvalidMemory):  # an unknown conversation: the insert's FK fails
        await service.save_conversation_memory(uid, str(uuid.uuid4()), "rolled back")
    assert await raw_value(client, settings.cache_key_prefix, uid) == before
    assert [m.summary for m in (await service.load_context(uid)).context.memories] == ["kept"]


async def test_every_kind_of_write_is_served_from_cache_right_after(cached, make_user):
    service_for, _client, _settings = cached
    service = service_for()
    uid = await make_user()
    memory = await service.save_conversation_memory(uid, None, "first")
    await service.upsert_preferences(uid, {"region": "마포구"})
    await service.record_entities(uid, [EntityInput("district", "마포구")])
    after_entities = await service.load_context(uid)
    assert after_entities.source is LoadSource.CACHE
    assert after_entities.context.preferences == {"region": "마포구"}
    assert after_entities.context.entities[0].name == "마포구"
    await service.delete_memory(uid, memory.id)
    after_delete = await service.load_context(uid)
    assert after_delete.source is LoadSource.CACHE and after_delete.context.memories == ()
    await service.forget_user(uid)
    forgotten = await service.load_context(uid)
    assert forgotten.source is LoadSource.CACHE, "forget installs a versioned empty context"
    assert forgotten.context.version == 5 and forgotten.context.preferences == {}


async def test_anonymous_loads_touch_neither_tier(cached):
    service_for, _client, _settings = cached
    service = service_for()
    from memlayer.cache import metrics as cache_metrics

    lookups = sum(s.value for s in cache_metrics.REQUESTS.collect()[0].samples)
    before = _context_loads()
    result = await service.load_context(None)
    assert result.source is LoadSource.NONE and result.context.memories == ()
    assert sum(s.value for s in cache_metrics.REQUESTS.collect()[0].samples) == lookups
    assert _context_loads() == before


async def test_write_failing_before_commit_leaves_redis_alone(cached, make_user, database_url):
    """Postgres unreachable mid-write: StoreUnavailable, nothing acknowledged, Redis as it was."""
    from sqlalchemy.engine import make_url

    from memlayer.memory.db import Database
    from memlayer.memory.errors import StoreUnavailable
    from tests.support.tcp_proxy import ChaosProxy

    service_for, client, settings = cached
    uid = await make_user()
    await service_for().save_conversation_memory(uid, None, "kept")
    before = await raw_value(client, settings.cache_key_prefix, uid)
    assert before is not None

    url = make_url(database_url)
    proxy = await ChaosProxy(url.port or 5432, url.host or "127.0.0.1").start()
    through_proxy = Database.from_settings(
        settings, url=url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    )
    cache = ContextCache(client, settings)
    service = LongTermMemoryService(through_proxy, settings, cache)
    proxy.refuse()
    try:
        with pytest.raises(StoreUnavailable):
            await service.save_conversation_memory(uid, None, "never acknowledged")
    finally:
        await cache.aclose()
        await through_proxy.aclose()
        await proxy.aclose()
    assert await raw_value(client, settings.cache_key_prefix, uid) == before
