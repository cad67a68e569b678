"""Redis that comes back with less than it had is noticed; nothing older than Postgres is
served past the bound, and the generation never goes backwards.

Each test owns its redis-server (a process it starts, snapshots, stops by PID and
restarts from an older RDB file); the shared Redis is never touched.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from memlayer.cache.epoch_record import EpochRecord
from memlayer.cache.keys import epoch_key
from memlayer.cache.metrics import TURNOVERS
from memlayer.settings import Settings
from tests.support.coherence import Node, converges, create_user, never_older, start_node
from tests.support.metrics import current
from tests.support.redis_server import RedisServer, require_redis_binaries


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """A redis-server of this test (a list: a restart replaces it)."""
    require_redis_binaries()
    server = RedisServer(tmp_path)
    server.wait_ready()
    servers = [server]
    yield servers
    servers[-1].stop()


@pytest.fixture
async def two_nodes(
    coherence_settings: Settings, own_redis: list[RedisServer]
) -> AsyncIterator[tuple[Node, Node]]:
    port = own_redis[0].port
    first = await start_node(coherence_settings, port)
    second = await start_node(coherence_settings, port)
    yield first, second
    await first.aclose()
    await second.aclose()


def restart_from(servers: list[RedisServer], snapshot: Path) -> None:
    """Stop the server by PID, put an older RDB file in place, start it on the same port."""
    old = servers[-1]
    old.stop()
    shutil.copyfile(snapshot, old.dump_path)
    restarted = RedisServer(old.dump_path.parent, port=old.port)
    restarted.wait_ready()
    servers.append(restarted)


async def test_redis_restored_from_an_older_snapshot_serves_nothing_older_past_the_bound(
    two_nodes: tuple[Node, Node], own_redis: list[RedisServer], tmp_path: Path
) -> None:
    writer, reader = two_nodes
    uid = await create_user(writer.database)
    await writer.service.save_conversation_memory(uid, None, "v1")
    assert (await reader.load(uid)).context.version == 1
    before = reader.cache.known_generation
    run_changed = current(TURNOVERS.labels("run_changed"))
    assert own_redis[-1].cli("SAVE").strip() == "OK"
    snapshot = tmp_path / "older.rdb"
    shutil.copyfile(own_redis[-1].dump_path, snapshot)  # holds v1, and the epoch record
    await writer.service.save_conversation_memory(uid, None, "v2")  # acknowledged
    assert (await reader.load(uid)).context.version == 2

    restart_from(own_redis, snapshot)  # Redis now holds v1 again, same generation

    # Until a process notices (its next epoch check), it may serve what Redis holds;
    # within the bound every process has turned over, and nothing older is served after.
    bound = reader.settings.coherence_bound_ms / 1000
    for node in (reader, writer):
        await _generation_rises(node, before, bound)
    for node in (reader, writer):
        await never_older(lambda node=node: node.load(uid), 2, 20)
    assert current(TURNOVERS.labels("run_changed")) > run_changed, "noticed by the run id"


async def test_a_flushed_redis_turns_the_cache_over_within_the_bound(
    two_nodes: tuple[Node, Node], own_redis: list[RedisServer]
) -> None:
    writer, reader = two_nodes
    uid = await create_user(writer.database)
    await writer.service.save_conversation_memory(uid, None, "v1")
    assert (await reader.load(uid)).context.version == 1
    before = reader.cache.known_generation
    missing = current(TURNOVERS.labels("epoch_missing"))

    assert own_redis[-1].cli("FLUSHALL").strip() == "OK"
    await writer.service.save_conversation_memory(uid, None, "v2")

    bound = reader.settings.coherence_bound_ms / 1000
    await _generation_rises(reader, before, bound)
    await converges(lambda: reader.load(uid), 2, bound)
    await never_older(lambda: reader.load(uid), 2, 20)
    assert current(TURNOVERS.labels("epoch_missing")) > missing


async def test_a_lower_generation_in_redis_is_never_adopted(
    two_nodes: tuple[Node, Node], own_redis: list[RedisServer]
) -> None:
    _writer, reader = two_nodes
    uid = await create_user(reader.database)
    await reader.load(uid)
    await reader.cache.turn_over()
    known = reader.cache.known_generation
    run_id = own_redis[-1].cli("INFO", "server").split("run_id:")[1].split()[0]

    own_redis[-1].cli("SET", epoch_key(reader.settings.cache_key_prefix), f"1:{run_id}")
    await reader.cache.check_epoch()

    assert reader.cache.generation == known + 1
    raw = own_redis[-1].cli("GET", epoch_key(reader.settings.cache_key_prefix)).strip()
    assert EpochRecord.parse(raw.encode()) == EpochRecord(known + 1, run_id)


async def _generation_rises(node: Node, before: int, within_s: float) -> None:
    """The node turned the cache over within ``within_s`` (polled: the deadline asserts)."""
    deadline = time.monotonic() + within_s
    while node.cache.generation is None or node.cache.generation <= before:
        assert time.monotonic() < deadline, f"no turnover within {within_s}s"
        await asyncio.sleep(0.02)


async def test_a_restored_redis_is_never_read_even_before_the_next_epoch_check(
    coherence_settings: Settings, own_redis: list[RedisServer], tmp_path: Path
) -> None:
    """After a restart every command runs on a new connection, and a new connection must
    prove it reaches the verified server: no load serves the restored snapshot, although
    the periodic epoch check is a minute away."""
    slow_checks = coherence_settings.model_copy(update={"cache_epoch_check_ms": 60_000})
    node = await start_node(slow_checks, own_redis[0].port)
    try:
        uid = await create_user(node.database)
        await node.service.save_conversation_memory(uid, None, "v1")
        assert (await node.load(uid)).context.version == 1
        assert own_redis[-1].cli("SAVE").strip() == "OK"
        snapshot = tmp_path / "older.rdb"
        shutil.copyfile(own_redis[-1].dump_path, snapshot)  # holds v1 and the epoch record
        await node.service.save_conversation_memory(uid, None, "v2")  # acknowledged
        assert (await node.load(uid)).context.version == 2

        restart_from(own_redis, snapshot)  # Redis holds v1 again, under the same generation

        for _ in range(20):
            assert (await node.load(uid)).context.version == 2
    finally:
        await node.aclose()
