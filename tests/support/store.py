"""Helpers the store suites share: empty a store's tables between tests."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def empty_memlayer_tables(engine: AsyncEngine) -> None:
    """Delete every item and namespace row (tests only: production never deletes rows of
    store_namespaces, so that versions never start over)."""
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM store_items"))
        await conn.execute(text("DELETE FROM store_namespaces"))


def psycopg_dsn(sqlalchemy_url: str) -> str:
    """The same database as a libpq URL, for AsyncPostgresStore (psycopg)."""
    from sqlalchemy.engine import make_url

    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(
        hide_password=False
    )
