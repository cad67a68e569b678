"""The services the tests talk to: the run's own Postgres databases, the shared Redis.

Scratch databases come from ``memlayer.chaos.database`` (the chaos run makes its own the
same way); this module adds the test servers' URLs and fails clearly when one is missing.

Integration tests never skip: if Postgres cannot be reached the run fails with a
message that names what is missing (``make test`` starts the local server when it can).
"""

from __future__ import annotations

import os

import asyncpg
import pytest

from memlayer.chaos import database as chaos_database

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"


def base_database_url() -> str:
    return os.environ.get("MEMLAYER_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def base_redis_url() -> str:
    return os.environ.get("MEMLAYER_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)


async def create_database(prefix: str = "memlayer_test") -> str:
    """Create a fresh, empty database on the test server; returns its SQLAlchemy URL."""
    base = base_database_url()
    try:
        return await chaos_database.create_database(base, prefix)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {base} ({exc}). Run `make test` (it starts the "
            "local server) or set MEMLAYER_TEST_DATABASE_URL.",
            pytrace=False,
        )


async def drop_database(url: str) -> None:
    await chaos_database.drop_database(base_database_url(), url)


async def migrate(url: str, revision: str = "head") -> None:
    await chaos_database.migrate(url, revision)
