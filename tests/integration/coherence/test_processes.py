"""The coherence bound with real ``memlayer serve`` processes on one database.

A writer process reaches Redis through a proxy the test owns (so it can be partitioned
while the reader still reaches Redis), and is killed with SIGKILL where the case says so.
Every case ends the same way: the reader process serves the acknowledged write within
the bound (MEMLAYER_COHERENCE_BOUND_MS, 2 s by default), and nothing older after it.
Convergence is polled with the bound as the deadline: the deadline is the assertion.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from memlayer.settings import Settings
from tests.support.api_client import (
    bearer,
    chat_socket,
    event,
    register,
    send_query,
    start_session,
)
from tests.support.cache_values import cached_version
from tests.support.coherence import never_older_than_after, version_converges
from tests.support.redis_server import RedisServer, require_redis_binaries
from tests.support.server_process import ServerProcess
from tests.support.services import base_database_url, create_database, drop_database, migrate
from tests.support.tcp_proxy import ChaosProxy

QUERIES = ("강남구 아파트 시세 알려줘", "마포구 전세 매물 있어?", "송파구 학군 좋은 아파트")


@dataclass
class Service:
    """A writer process (Redis through ``redis_proxy``) and a reader process."""

    writer: ServerProcess
    reader: ServerProcess
    redis_proxy: ChaosProxy
    settings: Settings

    @property
    def bound_s(self) -> float:
        return self.settings.coherence_bound_ms / 1000


@dataclass
class Person:
    user_id: int
    token: str
    session: str  # a chat session started on the writer


async def start_service(
    settings: Settings, redis_port: int, *, writer_db: str | None = None, **reader: object
) -> Service:
    proxy = await ChaosProxy(redis_port).start()
    writer_settings = settings.model_copy(update={"redis_url": proxy.url})
    if writer_db is not None:  # the writer's Postgres through a proxy (statements as text)
        writer_settings = writer_settings.model_copy(
            update={"database_url": writer_db, "database_prepared_statements": False}
        )
    reader_settings = settings.model_copy(update={"redis_url": _direct(redis_port), **reader})
    writer = await ServerProcess(writer_settings, ready_path="/readyz").start()
    try:
        reader_process = await ServerProcess(reader_settings, ready_path="/readyz").start()
    except BaseException:
        await writer.stop()
        raise
    return Service(writer, reader_process, proxy, settings)


async def stop_service(service: Service) -> None:
    await service.writer.stop()
    await service.reader.stop()
    await service.redis_proxy.aclose()


def _direct(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def service(coherence_settings: Settings, shared_redis_port: int) -> AsyncIterator[Service]:
    started = await start_service(coherence_settings, shared_redis_port)
    yield started
    await stop_service(started)


async def person(service: Service) -> Person:
    async with httpx.AsyncClient(base_url=service.reader.base_url, timeout=20) as http:
        user = await register(http)
    async with httpx.AsyncClient(base_url=service.writer.base_url, timeout=20) as http:
        session = await start_session(http, user["access_token"])
    return Person(user["user_id"], user["access_token"], session)


async def remember(
    process: ServerProcess, who: Person, query: str, turn_id: str | None = None
) -> list[dict]:
    """One chat turn on ``process`` (its memory save is the write); its events."""
    async with chat_socket(process.ws_url, who.session, who.token) as ws:
        return await send_query(ws, query, turn_id)


async def context(process: ServerProcess, who: Person) -> dict:
    async with httpx.AsyncClient(base_url=process.base_url, timeout=20) as http:
        response = await http.get("/api/v1/memory/context", headers=bearer(who.token))
    assert response.status_code == 200, response.text
    return response.json()


def reads_version(process: ServerProcess, who: Person):
    async def read() -> int:
        return int((await context(process, who))["version"])

    return read


def saved(events: list[dict]) -> None:
    """The turn was answered and its memory acknowledged as saved."""
    assert event(events, "final_response")
    assert not [e for e in events if e["type"] == "memory_unavailable"], events


async def warm(service: Service, who: Person) -> None:
    """v1 written through and cached: the reader serves it from Redis."""
    saved(await remember(service.writer, who, QUERIES[0]))
    first = await context(service.reader, who)
    assert first["version"] == 1 and first["source"] == "cache"


# --- the cases --------------------------------------------------------------------------


async def test_a_write_through_a_partitioned_writer(service: Service) -> None:
    who = await person(service)
    await warm(service, who)
    service.redis_proxy.refuse()  # the writer cannot reach Redis; the reader can

    saved(await remember(service.writer, who, QUERIES[1]))

    read = reads_version(service.reader, who)
    await version_converges(read, 2, service.bound_s)
    await never_older_than_after(read, 2, since=time.monotonic(), bound_s=0.0, watch_s=0.5)


async def test_the_writer_killed_right_after_an_acknowledged_write_while_partitioned(
    service: Service,
) -> None:
    who = await person(service)
    await warm(service, who)
    service.redis_proxy.refuse()

    saved(await remember(service.writer, who, QUERIES[1]))
    await service.writer.kill()  # kill -9: no write-through, no flush, nothing after

    read = reads_version(service.reader, who)
    await version_converges(read, 2, service.bound_s)
    await never_older_than_after(read, 2, since=time.monotonic(), bound_s=0.0, watch_s=0.5)


async def test_forget_me_through_a_partitioned_writer(service: Service) -> None:
    who = await person(service)
    await warm(service, who)
    service.redis_proxy.refuse()

    async with httpx.AsyncClient(base_url=service.writer.base_url, timeout=20) as http:
        forgotten = await http.delete("/api/v1/memory", headers=bearer(who.token))
    assert forgotten.status_code == 200, forgotten.text
    version = forgotten.json()["version"]

    read = reads_version(service.reader, who)
    await version_converges(read, version, service.bound_s)
    after = await context(service.reader, who)
    assert after["memories"] == [] and after["version"] == version


async def test_a_commit_that_reaches_postgres_and_loses_its_reply(
    coherence_settings: Settings, shared_redis_port: int
) -> None:
    url = make_url(coherence_settings.database_url or "")
    pg = await ChaosProxy(url.port or 5432, url.host or "127.0.0.1").start()
    through = url.set(host="127.0.0.1", port=pg.port).render_as_string(hide_password=False)
    service = await start_service(coherence_settings, shared_redis_port, writer_db=through)
    try:
        who = await person(service)
        await warm(service, who)
        turn_id = str(uuid.uuid4())
        # The COMMIT of the memory write (the connection that bumped the version), not
        # that of a session check or of the chat history.
        pg.cut_at(b"COMMIT", after=b"WITH bumped AS")

        events = await remember(service.writer, who, QUERIES[1], turn_id)

        [unknown] = [e for e in events if e["type"] == "memory_unavailable"]
        assert (unknown["stage"], unknown["outcome"]) == ("save", "unknown")
        assert event(events, "final_response")["turn_id"] == turn_id
        read = reads_version(service.reader, who)
        await version_converges(read, 2, service.bound_s)  # it was saved
        # The client sends the turn again, with its id: stored once, no version bump.
        saved(await remember(service.writer, who, QUERIES[1], turn_id))
        after = await context(service.reader, who)
        assert after["version"] == 2
        assert len(after["memories"]) == 2, "the retried turn is one memory, not two"
    finally:
        await stop_service(service)
        await pg.aclose()


# --- Redis restored from an older snapshot ---------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[list[RedisServer]]:
    require_redis_binaries()
    server = RedisServer(tmp_path)
    server.wait_ready()
    servers = [server]
    yield servers
    servers[-1].stop()


async def test_redis_restarted_from_an_older_snapshot(
    coherence_settings: Settings, own_redis: list[RedisServer], tmp_path: Path
) -> None:
    service = await start_service(coherence_settings, own_redis[0].port)
    try:
        who = await person(service)
        await warm(service, who)
        assert own_redis[-1].cli("SAVE").strip() == "OK"
        snapshot = tmp_path / "older.rdb"
        shutil.copyfile(own_redis[-1].dump_path, snapshot)  # v1 cached, the epoch record
        saved(await remember(service.writer, who, QUERIES[1]))
        assert (await context(service.reader, who))["version"] == 2

        old = own_redis[-1]
        old.stop()  # by PID
        shutil.copyfile(snapshot, old.dump_path)
        restarted = RedisServer(old.dump_path.parent, port=old.port)
        own_redis.append(restarted)
        restarted.wait_ready()
        fault = time.monotonic()

        for process in (service.reader, service.writer):
            staleness = await never_older_than_after(
                reads_version(process, who), 2, since=fault, bound_s=service.bound_s
            )
            assert staleness <= service.bound_s
    finally:
        await stop_service(service)


# --- a lagging read replica ----------------------------------------------------------------


@pytest.fixture
async def lagging_replica(coherence_settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
    """A fresh primary, and a replica cloned from it (TEMPLATE) that never catches up."""
    primary = await create_database("memlayer_proc_primary")
    await migrate(primary)
    replica = make_url(primary).set(database=f"{make_url(primary).database}_replica")
    admin = await asyncpg.connect(
        make_url(base_database_url()).set(drivername="postgresql").render_as_string(False)
    )
    try:
        await admin.execute(
            f'CREATE DATABASE "{replica.database}" TEMPLATE "{make_url(primary).database}"'
        )
    finally:
        await admin.close()
    replica_url = replica.render_as_string(hide_password=False)
    yield coherence_settings.model_copy(update={"database_url": primary}), replica_url
    await drop_database(replica_url)
    await drop_database(primary)


async def test_a_lagging_replica(
    lagging_replica: tuple[Settings, str], shared_redis_port: int
) -> None:
    settings, replica_url = lagging_replica
    service = await start_service(settings, shared_redis_port, database_replica_url=replica_url)
    try:
        who = await person(service)  # on the primary only: the replica never has the user
        saved(await remember(service.writer, who, QUERIES[0]))
        assert (await context(service.reader, who))["version"] == 1
        service.redis_proxy.refuse()
        saved(await remember(service.writer, who, QUERIES[1]))

        read = reads_version(service.reader, who)
        await version_converges(read, 2, service.bound_s)
        await never_older_than_after(read, 2, since=time.monotonic(), bound_s=0.0, watch_s=0.5)
        direct = Redis.from_url(_direct(shared_redis_port))
        assert await cached_version(direct, settings.cache_key_prefix, who.user_id) == 2
        await direct.aclose()
    finally:
        await stop_service(service)
