"""What keeps a process's cache coherent with every other process's: built once per process.

The app's lifespan (and tools that write memory) call :func:`context_cache` to build the
cache tier with its generation floor in Postgres, and :class:`CoherenceTasks` to run the
background work every process does: the outbox drainer (markers for writes whose
write-through did not happen) and the consistency sampler (cached versions compared
with Postgres). See docs/architecture.md invariant 7 and docs/coherence.md for the bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from memlayer.cache import ContextCache, RedisClient
from memlayer.memory.consistency import ConsistencySampler
from memlayer.memory.db import Database
from memlayer.memory.drainer import OutboxDrainer
from memlayer.memory.generation_floor import DatabaseGenerationFloor
from memlayer.memory.outbox import CONTEXT_FAMILY
from memlayer.settings import Settings


def context_cache(client: RedisClient, database: Database, settings: Settings) -> ContextCache:
    """The memory-context cache, its turnovers persisted in ``database`` first."""
    return ContextCache(
        client, settings, floor=DatabaseGenerationFloor(database, settings.cache_key_prefix)
    )


@dataclass
class CoherenceTasks:
    drainer: OutboxDrainer
    sampler: ConsistencySampler | None

    @classmethod
    def start(cls, database: Database, cache: ContextCache, settings: Settings) -> CoherenceTasks:
        """Start draining the outbox (and, on Postgres, sampling consistency)."""
        drainer = OutboxDrainer(database, settings)
        drainer.register(CONTEXT_FAMILY, cache, lambda: not cache.breaker_open)
        drainer.start()
        sampler = None
        if database.is_postgres and settings.consistency_check_interval_ms > 0:
            sampler = ConsistencySampler(database, cache, settings)
            sampler.start()
        return cls(drainer, sampler)

    async def aclose(self) -> None:
        if self.sampler is not None:
            await self.sampler.aclose()
        await self.drainer.aclose()
