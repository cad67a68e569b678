"""Shared fixtures (a real Postgres database per test run) and the suites' markers.

The integration tests never skip: if Postgres or Redis cannot be reached the run fails
with a message that names what is missing (``make test`` starts both when it can).
Helpers live in ``tests/support/``; this module only wires them into fixtures.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from memlayer.memory.db import Database
from memlayer.memory.models import User
from memlayer.memory.service import LongTermMemoryService
from memlayer.settings import Settings
from tests.support.services import base_redis_url, create_database, drop_database, migrate

TESTS = Path(__file__).resolve().parent
# Each suite is a directory; integration and e2e tests need the real services.
SUITE_MARKS = {
    "unit": (pytest.mark.unit,),
    "contract": (pytest.mark.contract,),
    "integration": (pytest.mark.integration, pytest.mark.external),
    "e2e": (pytest.mark.e2e, pytest.mark.external, pytest.mark.slow),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its suite (by directory), so ``-m`` can pick suites."""
    for item in items:
        suite = item.path.relative_to(TESTS).parts[0]
        for mark in SUITE_MARKS.get(suite, ()):
            item.add_marker(mark)


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
