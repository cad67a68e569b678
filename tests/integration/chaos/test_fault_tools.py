"""The chaos run's fault tools on the real thing: a COMMIT cut before its reply, a Redis
restarted from an older snapshot."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from memlayer.chaos.database import asyncpg_dsn
from memlayer.chaos.pgwire import WriteCommitWatch
from memlayer.chaos.proxy import ChaosProxy
from tests.support.redis_server import running_redis

BUMP = """
INSERT INTO memory_versions (user_id, version, updated_at) VALUES ($1, 1, now())
ON CONFLICT (user_id) DO UPDATE SET version = memory_versions.version + 1
RETURNING version
"""


async def version_of(dsn: str, user_id: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval("SELECT version FROM memory_versions WHERE user_id=$1", user_id)
        )
    finally:
        await conn.close()


async def test_a_cut_commit_is_committed_but_the_client_never_hears(database_url: str) -> None:
    dsn = asyncpg_dsn(database_url)
    url = make_url(database_url)
    proxy = await ChaosProxy(
        url.port or 5432, url.host or "127.0.0.1", inspector=WriteCommitWatch
    ).start()
    direct = await asyncpg.connect(dsn)
    user_id = await direct.fetchval(
        "INSERT INTO users (email) VALUES ('cut-' || gen_random_uuid() || '@example.com') "
        "RETURNING id"
    )
    await direct.close()
    proxied = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    conn = await asyncpg.connect(asyncpg_dsn(proxied.render_as_string(hide_password=False)))
    try:
        async with conn.transaction():  # prepares the statement: later runs send no SQL
            assert await conn.fetchval(BUMP, user_id) == 1
        cut = proxy.cut_after_next_match()
        async with conn.transaction():  # a read's COMMIT is left alone
            await conn.fetchval("SELECT version FROM memory_versions WHERE user_id=$1", user_id)
        assert not cut.is_set()

        with pytest.raises((asyncpg.exceptions.ConnectionDoesNotExistError, OSError)):
            async with conn.transaction():
                assert await conn.fetchval(BUMP, user_id) == 2
        assert cut.is_set()
        assert await version_of(dsn, user_id) == 2, "the write is committed all the same"
    finally:
        await conn.close()
        await proxy.aclose()


def server_run_id(redis) -> str:
    info = redis.cli("info", "server").splitlines()
    return next(line.split(":", 1)[1].strip() for line in info if line.startswith("run_id:"))


def test_redis_restarted_from_an_older_snapshot_has_lost_the_newer_writes(tmp_path) -> None:
    with running_redis(tmp_path) as redis:
        redis.cli("set", "k", "old")
        older = redis.snapshot(tmp_path / "older.rdb")
        redis.cli("set", "k", "new")
        run_id = server_run_id(redis)
        pid = redis.pid

        redis.restart(from_snapshot=older)

        assert redis.cli("get", "k").strip() == "old"
        assert redis.pid != pid
        assert server_run_id(redis) != run_id  # what the cache's epoch check looks at
