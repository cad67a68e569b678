"""``open_store()``: a ``MemlayerStore`` on the configured database and cache, and its clean-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from alembic import command
from langgraph.store.base import TTLConfig
from sqlalchemy.engine import make_url

from memlayer.cache import ContextCache, make_redis_client
from memlayer.cache.invalidation import NearAvailability, log_availability, near_availability
from memlayer.cache.keys import NAMESPACE_FAMILY
from memlayer.cache.near_tier import NearTier
from memlayer.memory.acks import OutboxAcks
from memlayer.memory.coherence import context_cache
from memlayer.memory.db import Database
from memlayer.memory.drainer import OutboxDrainer
from memlayer.migrations import alembic_config
from memlayer.settings import Settings, get_settings
from memlayer.store.errors import VectorSearchUnsupported
from memlayer.store.namespace_cache import NamespaceCache
from memlayer.store.repository import StoreRepository
from memlayer.store.store import MemlayerStore
from memlayer.store.ttl import TTLPolicy

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_store(
    settings: Settings | None = None,
    *,
    ttl: TTLConfig | None = None,
    index: Any = None,
    cache: ContextCache | None = None,
    drainer: OutboxDrainer | None = None,
) -> AsyncIterator[MemlayerStore]:
    """A store on ``settings`` (default: the ``MEMLAYER_*`` environment).

    With no database configured (the embedded default) it migrates its SQLite file itself
    and caches in an in-process Redis stand-in shared by the handles on that file; on
    Postgres the tables come with ``memlayer migrate`` (a database without them fails here
    with ``StoreNotMigrated``) and the cache is ``MEMLAYER_REDIS_URL``'s Redis: without a
    Redis URL it refuses to start (``MissingRedisUrl``) unless ``MEMLAYER_CACHE_ENABLED``
    is false, which runs it uncached (its writes still owe the outbox, so cached processes
    of the same database hear of them).

    ``cache`` and ``drainer``: a process that also runs the memory service passes its
    ``ContextCache`` (and its outbox drainer): the store then uses the same Redis client,
    breaker, generation and near-cache (one Redis, one breaker, one near-cache with one
    invalidation link: the caller's) and registers with that drainer. Without them the
    store builds its own, and starts the near-cache's invalidation link when the
    configuration allows one (``near_availability``: not embedded, not a cluster, not
    ``MEMLAYER_NEAR_CACHE_ENABLED=false``); it is closed before the Redis client.
    ``ttl`` overrides the ``MEMLAYER_STORE_*`` TTL settings key by key. ``index`` (vector
    search) is refused with ``VectorSearchUnsupported``.
    """
    if index is not None:
        raise VectorSearchUnsupported("open_store(index=...)")
    settings = settings if settings is not None else get_settings()
    policy = TTLPolicy.resolve(ttl, settings)
    cached = cache is not None or settings.cache_enabled
    if cache is None and cached:
        settings.check_cache_configuration()  # a configuration mistake, said before any I/O
    url = settings.resolved_database_url()
    if settings.embedded:
        log.info("memlayer store: embedded SQLite at %s (not for production)", url)
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    async with AsyncExitStack() as stack:
        database = Database.from_settings(settings, url)
        stack.push_async_callback(database.aclose)
        repository = StoreRepository(database.engine, database.replica_engine)
        await repository.probe(make_url(url).render_as_string(hide_password=True))
        namespaces = None
        if cached:
            namespaces = await _namespace_cache(stack, settings, database, repository, cache)
            if drainer is None:
                drainer = OutboxDrainer(database, settings)
                drainer.start()
                stack.push_async_callback(drainer.aclose)
            drainer.register(NAMESPACE_FAMILY, namespaces, _ready(namespaces))
            stack.callback(drainer.unregister, NAMESPACE_FAMILY, namespaces)
        store = MemlayerStore(
            repository, policy, namespaces, cache_cap=settings.store_cache_max_items
        )
        try:
            yield store
        finally:
            await store.aclose()


async def _namespace_cache(
    stack: AsyncExitStack,
    settings: Settings,
    database: Database,
    repository: StoreRepository,
    cache: ContextCache | None,
) -> NamespaceCache:
    """The Redis tier of the store, on the given context cache's tier or on its own."""
    if cache is None:
        # The process's view of Redis (breaker, generation, epoch watch, recovery) lives
        # in a ContextCache, whose turnovers persist the generation in Postgres first.
        scope = None if settings.redis_url else settings.resolved_database_url()
        client = make_redis_client(settings, embedded_scope=scope)
        stack.push_async_callback(client.aclose)
        cache = context_cache(client, database, settings)
        stack.push_async_callback(cache.aclose)
        # Warm reads skip Redis only with an invalidation link (one more connection); it
        # closes before the cache and the client it uses (the stack unwinds in reverse).
        availability = near_availability(settings)
        log_availability(availability)
        if availability is NearAvailability.AVAILABLE and cache.near is not None:
            near = NearTier.start(cache, settings)
            stack.push_async_callback(near.aclose)
    acks = OutboxAcks(database, settings)
    stack.push_async_callback(acks.aclose)
    namespaces = NamespaceCache(cache.tier, cache.client, repository, settings, acks)
    stack.push_async_callback(namespaces.aclose)
    return namespaces


def _ready(namespaces: NamespaceCache) -> Any:
    return lambda: not namespaces.breaker_open
