"""Engines and session factories, created once per process (the app's lifespan)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from memlayer.settings import Settings, require_embedded_extra


def make_engine(url: str, settings: Settings) -> AsyncEngine:
    """An async engine tuned for the dialect: pooled asyncpg, or SQLite with FKs on."""
    if url.startswith("sqlite"):
        require_embedded_extra("aiosqlite", f"the database URL {url!r} is SQLite")
        engine = create_async_engine(url, connect_args={"timeout": 15})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.close()

        return engine

    connect_args: dict[str, Any] = {
        "timeout": settings.database_pool_timeout_seconds,
        "command_timeout": settings.database_statement_timeout_ms / 1000 + 1,
        "server_settings": {
            "application_name": "memlayer",
            "timezone": "UTC",
            "statement_timeout": str(settings.database_statement_timeout_ms),
        },
    }
    if not settings.database_prepared_statements:
        # Behind pgbouncer in transaction mode, server-side prepared statements break.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        pool_recycle=1800,
        connect_args=connect_args,
    )


@dataclass
class Database:
    """The primary engine and, optionally, a read replica used only for cache fills."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    fill_sessionmaker: async_sessionmaker[AsyncSession]
    replica_engine: AsyncEngine | None = None

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> Database:
        engine = make_engine(url or settings.resolved_database_url(), settings)
        replica = (
            make_engine(settings.database_replica_url, settings)
            if settings.database_replica_url
            else None
        )
        primary = async_sessionmaker(engine, expire_on_commit=False)
        fills = async_sessionmaker(replica, expire_on_commit=False) if replica else primary
        return cls(engine, primary, fills, replica)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session with a transaction that commits on success, rolls back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """One ``SELECT 1`` on the primary; raises whatever the driver raises (readiness
        reports any failure by its class name)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def aclose(self) -> None:
        if self.replica_engine is not None:
            await self.replica_engine.dispose()
        await self.engine.dispose()
