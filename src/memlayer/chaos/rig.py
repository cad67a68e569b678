"""Everything a chaos run owns, and nothing else: started by it, stopped by PID.

* a Postgres database of its own on the configured server (created, migrated, dropped);
* one redis-server on a free port with its own directory (so it can be saved, stopped and
  restarted from an older snapshot);
* for each ``memlayer serve`` process (a *slot*): a TCP proxy to Redis (to partition that
  process alone) and one to Postgres (to cut a write's COMMIT before its reply);
* the serve processes themselves; a killed one is replaced in its slot.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from memlayer.chaos import database
from memlayer.chaos.pgwire import WriteCommitWatch
from memlayer.chaos.proxy import ChaosProxy
from memlayer.chaos.redis_server import RedisServer, require_redis_binaries
from memlayer.chaos.server import ServerProcess

# The stores and the secret are the run's own; every other MEMLAYER_* setting of the
# caller's environment reaches the servers (to try a run with other timeouts, say).
_OWNED = {
    "MEMLAYER_DATABASE_URL",
    "MEMLAYER_DATABASE_REPLICA_URL",
    "MEMLAYER_REDIS_URL",
    "MEMLAYER_CACHE_KEY_PREFIX",
    "MEMLAYER_JWT_SECRET",
    "MEMLAYER_DATA_DIR",
}
# Every user of the run signs up and signs in from 127.0.0.1: the abuse limits of a
# public service (per IP and per account) must not throttle the run's own clients.
_GENEROUS_LIMITS = {
    "MEMLAYER_RATE_LIMIT_REGISTER": "1000000/minute",
    "MEMLAYER_RATE_LIMIT_LOGIN_FAILURES": "1000000/minute",
    "MEMLAYER_RATE_LIMIT_ANONYMOUS_START": "1000000/minute",
}


@dataclass(eq=False)
class Slot:
    """One serve process's place: its proxies stay, the process may be replaced."""

    index: int
    redis_proxy: ChaosProxy
    pg_proxy: ChaosProxy
    server: ServerProcess | None = None
    ready: bool = False
    starts: int = 0
    pids: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"p{self.index}"


class Rig:
    def __init__(self, workdir: Path, server_url: str, say: Callable[[str], None]) -> None:
        self.workdir = workdir
        self._server_url = server_url
        self._say = say
        self.database_url: str | None = None
        self.redis: RedisServer | None = None
        self.slots: list[Slot] = []
        self._env: dict[str, str] = {}
        self._truth: asyncpg.Pool | None = None

    async def start(self, processes: int) -> Rig:
        require_redis_binaries()
        self.database_url = await database.create_database(self._server_url, "memlayer_chaos")
        await database.migrate(self.database_url)
        self._say(f"database {make_url(self.database_url).database} created and migrated")
        # The judge's own line to Postgres (no proxy, no cache), for evidence of stale reads.
        self._truth = await asyncpg.create_pool(
            database.asyncpg_dsn(self.database_url), min_size=1, max_size=2
        )
        redis_dir = self.workdir / "redis"
        redis_dir.mkdir()
        self.redis = RedisServer(redis_dir)
        await asyncio.to_thread(self.redis.wait_ready)
        self._say(f"redis-server pid {self.redis.pid} on :{self.redis.port}")
        self._env = self._server_env()
        db = make_url(self.database_url)
        for index in range(processes):
            redis_proxy = await ChaosProxy(self.redis.port).start()
            pg_proxy = await ChaosProxy(
                db.port or 5432, db.host or "127.0.0.1", inspector=WriteCommitWatch
            ).start()
            self.slots.append(Slot(index, redis_proxy, pg_proxy))
        await asyncio.gather(*(self.launch(slot) for slot in self.slots))
        return self

    def _server_env(self) -> dict[str, str]:
        inherited = {
            key: value
            for key, value in os.environ.items()
            if key.startswith("MEMLAYER_") and key not in _OWNED
        }
        return {
            **_GENEROUS_LIMITS,
            "MEMLAYER_LOG_LEVEL": "WARNING",
            **inherited,
            "MEMLAYER_CACHE_KEY_PREFIX": f"chaos-{secrets.token_hex(4)}",
            "MEMLAYER_JWT_SECRET": secrets.token_urlsafe(48),
        }

    async def launch(self, slot: Slot) -> None:
        """Start a serve process in ``slot``, its stores reached through the slot's proxies."""
        assert self.database_url is not None
        db = make_url(self.database_url).set(host="127.0.0.1", port=slot.pg_proxy.port)
        env = {
            **self._env,
            "MEMLAYER_DATABASE_URL": db.render_as_string(hide_password=False),
            "MEMLAYER_REDIS_URL": f"redis://127.0.0.1:{slot.redis_proxy.port}/0",
        }
        slot.starts += 1
        log = self.workdir / f"{slot.name}-{slot.starts}.log"
        server = ServerProcess(env, log_path=log)
        slot.server = server
        await server.start()
        assert server.pid is not None
        slot.pids.append(server.pid)
        slot.ready = True

    def live(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.ready]

    async def committed_version(self, user_id: int) -> int:
        """The user's memory version in Postgres now, read directly (no proxy, no cache)."""
        assert self._truth is not None, "the rig has not started"
        version = await self._truth.fetchval(
            "SELECT version FROM memory_versions WHERE user_id = $1", user_id
        )
        return int(version or 0)

    async def aclose(self) -> None:
        """Stop what was started, in reverse order; drop the database."""
        for slot in self.slots:
            slot.ready = False
        if self._truth is not None:
            await self._truth.close()
        stopping = [slot.server.stop() for slot in self.slots if slot.server is not None]
        await asyncio.gather(*stopping, return_exceptions=True)
        for slot in self.slots:
            if slot.server is not None:
                slot.server.close_log()
            await slot.redis_proxy.aclose()
            await slot.pg_proxy.aclose()
        if self.redis is not None:
            await asyncio.to_thread(self.redis.stop)
        if self.database_url is not None:
            await database.drop_database(self._server_url, self.database_url)

    def has_files(self) -> bool:
        return any(self.workdir.iterdir())

    def remove_workdir(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
