"""The cache generation's floor in Postgres (``cache.port.GenerationFloor``).

A turnover raises it here before installing the generation in Redis, so Redis that
comes back with an older epoch record can never make a process reuse a generation whose
keys may still hold old values (``cache.epoch``). One row per key prefix.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from memlayer.cache import FloorUnavailable
from memlayer.memory.db import Database
from memlayer.memory.models import CacheGeneration, utcnow

_DB_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


class DatabaseGenerationFloor:
    __slots__ = ("_database", "_prefix")

    def __init__(self, database: Database, prefix: str) -> None:
        self._database = database
        self._prefix = prefix

    async def read(self) -> int:
        try:
            async with self._database.engine.connect() as conn:
                value = await conn.scalar(
                    select(CacheGeneration.generation).where(CacheGeneration.prefix == self._prefix)
                )
        except _DB_ERRORS as exc:
            raise FloorUnavailable(f"cannot read the generation floor: {exc}") from exc
        return int(value or 0)

    async def raise_to(self, generation: int) -> int:
        dialect = self._database.engine.dialect.name
        module = postgresql if dialect == "postgresql" else sqlite
        greatest = "GREATEST" if dialect == "postgresql" else "max"
        stmt = module.insert(CacheGeneration).values(
            prefix=self._prefix, generation=generation, updated_at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[CacheGeneration.prefix],
            set_={
                "generation": text(
                    f"{greatest}(cache_generations.generation, excluded.generation)"
                ),
                "updated_at": stmt.excluded.updated_at,
            },
        ).returning(CacheGeneration.generation)
        try:
            async with self._database.engine.begin() as conn:
                stored = (await conn.execute(stmt)).scalar_one()
        except _DB_ERRORS as exc:
            raise FloorUnavailable(f"cannot raise the generation floor: {exc}") from exc
        return int(stored)
