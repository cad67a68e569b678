"""The services the tests talk to: the run's own Postgres databases, the shared Redis.

Integration tests never skip: if Postgres cannot be reached the run fails with a
message that names what is missing (``make test`` starts the local server when it can).
"""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest
from alembic import command
from sqlalchemy.engine import make_url

from memlayer.migrations import alembic_config

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"


def base_database_url() -> str:
    return os.environ.get("MEMLAYER_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def base_redis_url() -> str:
    return os.environ.get("MEMLAYER_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(prefix: str = "memlayer_test") -> str:
    """Create a fresh, empty database on the test server; returns its SQLAlchemy URL."""
    base = base_database_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(_asyncpg_dsn(base), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {base} ({exc}). Run `make test` (it starts the "
            "local server) or set MEMLAYER_TEST_DATABASE_URL.",
            pytrace=False,
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(base).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = await asyncpg.connect(_asyncpg_dsn(base_database_url()), timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def migrate(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)
