"""The faults a chaos run injects, each on its own and each undone before the next.

* ``partition``: one process loses Redis for a while (its proxy refuses connections, or
  stalls them: a hung Redis whose late replies arrive after it heals). Its writes commit
  in Postgres but cannot be written through.
* ``kill``: one process is partitioned, and the moment it acknowledges a write it is
  killed with SIGKILL (no shutdown code runs: whatever it remembered is gone); a
  replacement starts in its place.
* ``redis-restart``: Redis saves a snapshot, takes more writes, is stopped by PID and
  started again from that OLDER snapshot (a restore, or a restart that lost its newest
  writes): it serves values older than writes already acknowledged.
* ``commit-failure``: one process's next memory write has its COMMIT delivered to
  Postgres and the connection cut before the reply (``pgwire``): committed, but the
  process cannot know.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from memlayer.chaos.rig import Rig, Slot
from memlayer.chaos.workload import Clients


class FaultKind(StrEnum):
    PARTITION = "partition"
    KILL = "kill"
    REDIS_RESTART = "redis-restart"
    COMMIT_FAILURE = "commit-failure"


@dataclass(frozen=True, slots=True)
class FaultRecord:
    kind: FaultKind
    target: str
    started: float  # seconds into the run
    seconds: float  # how long it lasted
    detail: str


class Faults:
    def __init__(
        self,
        rig: Rig,
        clients: Clients,
        rng: random.Random,
        *,
        bound: float,
        partition_seconds: float,
        snapshot_lead_seconds: float,
        wait_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._rig = rig
        self._clients = clients
        self._rng = rng
        self._bound = bound
        self._partition_seconds = partition_seconds
        self._snapshot_lead = snapshot_lead_seconds
        self._wait = wait_seconds  # for an acknowledged write, or a write's COMMIT
        self._clock = clock
        self._partitions = 0

    async def inject(self, kind: FaultKind) -> FaultRecord:
        started = self._clock()
        if kind is FaultKind.REDIS_RESTART:
            target, detail = "redis", await self._redis_restart()
        else:
            live = self._rig.live()
            if not live:
                return FaultRecord(kind, "-", started, 0.0, "skipped: no live process")
            slot = self._rng.choice(live)
            target = slot.name
            if kind is FaultKind.PARTITION:
                detail = await self._partition(slot)
            elif kind is FaultKind.KILL:
                detail = await self._kill(slot)
            else:
                detail = await self._commit_failure(slot)
        return FaultRecord(kind, target, started, self._clock() - started, detail)

    async def _partition(self, slot: Slot) -> str:
        self._partitions += 1
        stall = self._partitions % 2 == 0  # alternate: refused, then hung
        # A user written through the partitioned process rests until the partition has
        # healed and the bound passed twice: only the coherence machinery can spread it.
        self._clients.hold_after_ack[slot.name] = self._partition_seconds + 2 * self._bound
        if stall:
            slot.redis_proxy.stall()
        else:
            slot.redis_proxy.refuse()
        try:
            await asyncio.sleep(self._partition_seconds)
        finally:
            slot.redis_proxy.forward()
            self._clients.hold_after_ack.pop(slot.name, None)
        how = "stalled (hung Redis)" if stall else "refused (Redis unreachable)"
        return f"Redis {how} for {self._partition_seconds:g} s"

    async def _kill(self, slot: Slot) -> str:
        server = slot.server
        assert server is not None
        slot.redis_proxy.refuse()  # partitioned: its write-through cannot reach Redis
        # The user it acknowledges rests: the write must reach the others without its writer.
        self._clients.hold_after_ack[slot.name] = 3 * self._bound
        before = self._clients.tally.acks_by_slot[slot.name]
        try:
            async with asyncio.timeout(self._wait):
                await self._clients.acknowledged_through(slot, before)
            when = "right after it acknowledged a write while partitioned"
        except TimeoutError:
            when = f"partitioned, no write acknowledged through it in {self._wait:g} s"
        slot.ready = False
        self._clients.hold_after_ack.pop(slot.name, None)
        pid = server.pid
        await server.kill()
        server.close_log()
        slot.redis_proxy.forward()
        await self._rig.launch(slot)
        return f"SIGKILL pid {pid} {when}; replaced by pid {server_pid(slot)}"

    async def _redis_restart(self) -> str:
        redis = self._rig.redis
        assert redis is not None
        older = self._rig.workdir / "older.rdb"
        await asyncio.to_thread(redis.snapshot, older)
        acks = self._clients.log.count
        await asyncio.sleep(self._snapshot_lead)  # writes the snapshot will not have
        missed = self._clients.log.count - acks
        old_pid = redis.pid
        await asyncio.to_thread(redis.restart, from_snapshot=older)
        return (
            f"pid {old_pid} stopped, restarted as pid {redis.pid} from a snapshot "
            f"{self._snapshot_lead:g} s old ({missed} acknowledged writes newer)"
        )

    async def _commit_failure(self, slot: Slot) -> str:
        cut = slot.pg_proxy.cut_after_next_match()
        try:
            async with asyncio.timeout(self._wait):
                await cut.wait()
        except TimeoutError:
            slot.pg_proxy.disarm()
            return f"no memory write went through it in {self._wait:g} s"
        return "a memory write's COMMIT reached Postgres; the connection was cut before the reply"


def server_pid(slot: Slot) -> int | None:
    return slot.server.pid if slot.server is not None else None


def monotonic_since(start: float) -> Callable[[], float]:
    return lambda: time.monotonic() - start
