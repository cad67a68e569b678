"""Shared fixtures: a real Postgres database per test run, created and dropped here.

The integration tests never skip: if Postgres or Redis cannot be reached the run fails
with a message that names what is missing (``make test`` starts both when it can).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from alembic import command
from sqlalchemy.engine import make_url

from memlayer.memory.db import Database
from memlayer.memory.models import User
from memlayer.memory.service import LongTermMemoryService
from memlayer.migrations import alembic_config
from memlayer.settings import Settings

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


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """One migrated database for the whole run (tests isolate by creating their own users)."""
    url = await create_database()
    try:
        await migrate(url)
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=base_redis_url(),
        cache_key_prefix=f"memlayer-test-{uuid.uuid4().hex[:8]}",
        jwt_secret="test-secret-" + uuid.uuid4().hex,
    )


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database.from_settings(settings)
    yield db
    await db.aclose()


@pytest.fixture
def pg_service(database: Database, settings: Settings) -> LongTermMemoryService:
    """The memory service on Postgres alone (no cache tier)."""
    return LongTermMemoryService(database, settings)


_emails = itertools.count()


@pytest.fixture
def make_user(database: Database) -> Callable[[], Awaitable[int]]:
    """Create a fresh user and return its id (tests isolate by user, not by rollback)."""

    async def create() -> int:
        async with database.transaction() as db:
            user = User(email=f"user{next(_emails)}-{uuid.uuid4().hex[:8]}@example.test")
            db.add(user)
            await db.flush()
            return user.id

    return create
