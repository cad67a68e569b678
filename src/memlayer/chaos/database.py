"""Scratch Postgres databases: created fresh on a server, migrated, dropped afterwards.

The chaos run (and the test suite) never touch a database they did not create: each gets
its own, named ``<prefix>_<random>``, on the server the given URL points to.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from alembic import command
from sqlalchemy.engine import make_url

from memlayer.migrations import alembic_config


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy ``postgresql+asyncpg://`` URL as a plain libpq DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(server_url: str, prefix: str) -> str:
    """Create an empty database on ``server_url``'s server; returns its SQLAlchemy URL.

    Raises ``OSError`` or ``asyncpg.PostgresError`` when the server cannot be reached.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(server_url), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, url: str) -> None:
    """Drop ``url``'s database (connections still open to it are terminated)."""
    name = make_url(url).database
    admin = await asyncpg.connect(asyncpg_dsn(server_url), timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def migrate(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)
