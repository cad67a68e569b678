"""Migrations on a real Postgres: the upgrade path of an existing deployment."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from memlayer.migrations import alembic_config
from tests.support.services import create_database, drop_database, migrate


@pytest.fixture
async def fresh_url():
    url = await create_database("memlayer_mig")
    yield url
    await drop_database(url)


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        names = {r[0] for r in rows}
    await engine.dispose()
    return names


async def test_upgrade_from_empty_to_head_creates_every_table(fresh_url):
    await migrate(fresh_url)
    assert await _tables(fresh_url) >= {
        "users",
        "local_auths",
        "sessions",
        "chat_sessions",
        "chat_messages",
        "conversation_memories",
        "user_preferences",
        "entity_memories",
        "memory_versions",
        "cache_outbox",
        "cache_generations",
        "alembic_version",
    }


async def test_legacy_session_user_ids_convert_and_junk_becomes_anonymous(fresh_url, caplog):
    await migrate(fresh_url, "0001")
    engine = create_async_engine(fresh_url)
    expires = datetime.now(UTC) + timedelta(hours=1)
    legacy = {
        "s-plain": "1",
        "s-spaces": "  2 ",
        "s-zero-padded": "0003",
        "s-letters": "abc",
        "s-empty": "",
        "s-prefixed": "user-7",
        "s-missing-user": "999",
        "s-negative": "-1",
        "s-huge": "123456789012345",
        "s-null": None,
    }
    async with engine.begin() as conn:
        for uid in (1, 2, 3):
            await conn.execute(
                text("INSERT INTO users (id, email) VALUES (:id, :email)"),
                {"id": uid, "email": f"legacy{uid}@example.test"},
            )
        for sid, uid in legacy.items():
            await conn.execute(
                text(
                    "INSERT INTO sessions (session_id, user_id, metadata, expires_at) "
                    "VALUES (:sid, :uid, '{\"k\": 1}', :exp)"
                ),
                {"sid": sid, "uid": uid, "exp": expires},
            )
    caplog.set_level(logging.WARNING, logger="memlayer.migrations")
    await migrate(fresh_url)
    async with engine.connect() as conn:
        rows = dict((await conn.execute(text("SELECT session_id, user_id FROM sessions"))).all())
        coltype = (
            await conn.execute(
                text(
                    "SELECT data_type FROM information_schema.columns "
                    "WHERE table_name = 'sessions' AND column_name = 'user_id'"
                )
            )
        ).scalar_one()
        metadata = (
            await conn.execute(text("SELECT metadata FROM sessions WHERE session_id = 's-plain'"))
        ).scalar_one()
    await engine.dispose()
    assert coltype == "integer"
    assert rows == {
        "s-plain": 1,
        "s-spaces": 2,
        "s-zero-padded": 3,
        "s-letters": None,
        "s-empty": None,
        "s-prefixed": None,
        "s-missing-user": None,
        "s-negative": None,
        "s-huge": None,
        "s-null": None,
    }, "every row must survive the upgrade"
    assert metadata == {"k": 1}
    report = [r.getMessage() for r in caplog.records if r.name == "memlayer.migrations"]
    assert any("6 of 10 session rows" in m for m in report), report


async def test_downgrade_to_base_and_upgrade_again(fresh_url):
    await migrate(fresh_url)
    await asyncio.to_thread(command.downgrade, alembic_config(fresh_url), "base")
    assert await _tables(fresh_url) <= {"alembic_version"}
    await migrate(fresh_url)
    assert "conversation_memories" in await _tables(fresh_url)


async def test_downgrade_of_user_id_conversion_keeps_ids_as_strings(fresh_url):
    await migrate(fresh_url)
    engine = create_async_engine(fresh_url)
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO users (id, email) VALUES (5, 'five@example.test')"))
        await conn.execute(
            text(
                "INSERT INTO sessions (session_id, user_id, expires_at) "
                "VALUES ('s5', 5, now()), ('anon', NULL, now())"
            )
        )
    await asyncio.to_thread(command.downgrade, alembic_config(fresh_url), "0001")
    async with engine.connect() as conn:
        rows = dict((await conn.execute(text("SELECT session_id, user_id FROM sessions"))).all())
    await engine.dispose()
    assert rows == {"s5": "5", "anon": None}


async def test_models_match_migrations_no_drift(fresh_url):
    await migrate(fresh_url)
    # alembic check raises when autogenerate would emit any operation.
    await asyncio.to_thread(command.check, alembic_config(fresh_url))


def test_alembic_cli_and_memlayer_migrate_use_the_same_settings(tmp_path):
    """`alembic upgrade head` at the project root reads MEMLAYER_* like the service does."""
    env = {"MEMLAYER_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [sys.executable, "-m", "memlayer.cli", "migrate"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert (tmp_path / "memlayer.db").exists()
    assert "head" in (out.stdout + out.stderr)
