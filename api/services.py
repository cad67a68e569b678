"""Everything the routers use, built once in the lifespan and closed in reverse order."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from memlayer.api.auth import TokenService
from memlayer.api.ratelimit import AbuseLimiter
from memlayer.cache import ContextCache, NullContextCache, RedisClient, make_redis_client
from memlayer.cache.invalidation import NearAvailability, log_availability, near_availability
from memlayer.cache.near_tier import NearTier
from memlayer.memory.coherence import CoherenceTasks, context_cache
from memlayer.memory.db import Database
from memlayer.memory.history import ChatHistory
from memlayer.memory.service import LongTermMemoryService
from memlayer.memory.sessions import SessionManager
from memlayer.memory.users import UserStore
from memlayer.settings import Settings
from memlayer.supervisor.graph import ChatWorkflow

log = logging.getLogger("memlayer")


@dataclass
class AppServices:
    settings: Settings
    database: Database
    redis: RedisClient | None
    cache: ContextCache | NullContextCache
    memory: LongTermMemoryService
    sessions: SessionManager
    users: UserStore
    history: ChatHistory
    tokens: TokenService
    workflow: ChatWorkflow
    limiter: AbuseLimiter
    coherence: CoherenceTasks | None = None
    near: NearTier | None = None  # the near-cache's link and lag probes, when it can run

    @classmethod
    async def start(cls, settings: Settings) -> AppServices:
        if settings.embedded:
            log.warning(
                "memlayer is running in EMBEDDED mode (SQLite in %s, in-process Redis "
                "stand-in): fine for trying it out, not for production. Set "
                "MEMLAYER_DATABASE_URL and MEMLAYER_REDIS_URL for real services.",
                settings.data_dir,
            )
            await asyncio.to_thread(_migrate_embedded, settings)
        database = Database.from_settings(settings)
        redis = make_redis_client(settings) if settings.cache_enabled else None
        cache = (
            context_cache(redis, database, settings) if redis is not None else NullContextCache()
        )
        memory = LongTermMemoryService(database, settings, cache)
        # Every process drains the outbox and samples consistency (docs/architecture.md,
        # invariant 7).
        coherence = (
            CoherenceTasks.start(database, cache, settings)
            if isinstance(cache, ContextCache)
            else None
        )
        # The near-cache serves only with its invalidation link (one more connection).
        availability = near_availability(settings)
        log_availability(availability)
        near = (
            NearTier.start(cache, settings)
            if availability is NearAvailability.AVAILABLE
            and isinstance(cache, ContextCache)
            and cache.near is not None  # near_cache_max_entries=0 keeps nothing to serve
            else None
        )
        return cls(
            settings=settings,
            database=database,
            redis=redis,
            cache=cache,
            memory=memory,
            sessions=SessionManager(database, timedelta(hours=settings.session_ttl_hours)),
            users=UserStore(database),
            history=ChatHistory(database),
            tokens=TokenService(
                settings.resolved_jwt_secret(),
                algorithm=settings.jwt_algorithm,
                ttl_seconds=settings.jwt_ttl_seconds,
            ),
            workflow=ChatWorkflow(memory),
            limiter=AbuseLimiter.from_settings(settings),
            coherence=coherence,
            near=near,
        )

    async def aclose(self) -> None:
        await self.limiter.aclose()
        if self.coherence is not None:
            await self.coherence.aclose()
        await self.memory.aclose()
        if self.near is not None:  # probes, then the link, before the client they use
            await self.near.aclose()
        await self.cache.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.database.aclose()


def _migrate_embedded(settings: Settings) -> None:
    from alembic import command

    from memlayer.migrations import alembic_config

    command.upgrade(alembic_config(settings.resolved_database_url()), "head")
