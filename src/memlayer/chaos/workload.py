"""Readers and writers over many users, through the API as clients use it.

Users sign up over HTTP and carry their bearer token. Writers own disjoint sets of users
(one writer per user, each write awaited before the next: ``history``'s version rule
needs it) and write through any live process: mostly chat turns over the WebSocket (the
response step saves a memory), sometimes "forget me" (``DELETE /api/v1/memory``, which
answers with the new version). Readers read ``GET /api/v1/memory/context`` of any user on
any live process, and every read is checked against the writes acknowledged so far.

A stale copy is only observable while nobody writes that user again (the next write
through a healthy process replaces it), so users rest between writes: after some writes
at random (``quiet_share``), and always after a write acknowledged by a process whose
Redis is partitioned (``hold_after_ack``, set by the faults): such a write must reach
every other process by the coherence machinery alone, within the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from memlayer.chaos.history import AckLog
from memlayer.chaos.rig import Rig, Slot
from memlayer.supervisor.intents import Intent, classify_intent

PASSWORD = "chaos-password-1"
# Real-estate questions: the planner keeps them (never "irrelevant"), so every answered
# turn saves a memory and bumps the user's version (checked at import, below).
QUERIES = (
    "강남구 아파트 시세 알려줘",
    "마포구 전세 대출 금리 알려줘",
    "서초구 매매 계약 주의사항은?",
    "송파구 집값 전망 알려줘",
)
assert all(classify_intent(q).intent is not Intent.IRRELEVANT for q in QUERIES)
TURN_SECONDS = 20.0
CONFIRMED_STALE_READS = 50  # stale reads checked against Postgres directly
REQUEST_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ChaosUser:
    user_id: int
    headers: dict[str, str]


@dataclass(slots=True)
class StaleRead:
    at: float  # seconds into the run the read started
    user_id: int
    slot: str
    version: int
    expected: int
    staleness: float
    committed: int | None = None  # Postgres's version when it was seen (None: not asked)


@dataclass(slots=True)
class Tally:
    """What the clients saw; read by the progress line and the summary."""

    bound: float
    start: float = 0.0  # monotonic time the run started
    writes: Counter[str] = field(default_factory=Counter)  # by kind and outcome
    reads: Counter[str] = field(default_factory=Counter)  # checked / failed
    reads_behind: int = 0  # missed an acknowledged write, within the bound
    stale: list[StaleRead] = field(default_factory=list)  # beyond the bound
    worst: float = 0.0
    acks_by_slot: Counter[str] = field(default_factory=Counter)


class Clients:
    """The run's HTTP client and the rules every request follows."""

    def __init__(self, rig: Rig, log: AckLog, tally: Tally, rng: random.Random) -> None:
        self.rig = rig
        self.log = log
        self.tally = tally
        self.rng = rng
        self.http = httpx.AsyncClient(
            timeout=REQUEST_SECONDS, limits=httpx.Limits(max_connections=200)
        )
        self._acked = asyncio.Condition()
        self.rest_until: dict[int, float] = {}  # user -> monotonic time writes resume
        self.hold_after_ack: dict[str, float] = {}  # slot name -> seconds a user rests

    async def aclose(self) -> None:
        await self.http.aclose()

    def pick(self) -> Slot | None:
        live = self.rig.live()
        return self.rng.choice(live) if live else None

    # ------------------------------------------------------------------ users

    async def sign_up(self, count: int) -> list[ChaosUser]:
        gate = asyncio.Semaphore(8)

        async def one(n: int) -> ChaosUser:
            email = f"chaos-{n}-{uuid.uuid4().hex[:8]}@example.com"
            problem = "no live process"
            async with gate:
                for _attempt in range(5):
                    slot = self.pick()
                    if slot is None or slot.server is None:
                        await asyncio.sleep(0.2)
                        continue
                    try:
                        response = await self.http.post(
                            f"{slot.server.base_url}/api/v1/auth/register",
                            json={"email": email, "password": PASSWORD},
                        )
                    except httpx.HTTPError as exc:
                        problem = f"{type(exc).__name__} from {slot.name}"
                        continue
                    if response.status_code == 201:
                        body = response.json()
                        token = body["access_token"]
                        return ChaosUser(body["user_id"], {"Authorization": f"Bearer {token}"})
                    problem = f"HTTP {response.status_code} {response.text[:200]}"
                raise RuntimeError(f"could not register a user: {problem}")

        return list(await asyncio.gather(*(one(n) for n in range(count))))

    # ----------------------------------------------------------------- writes

    async def acknowledged_through(self, slot: Slot, after: int) -> None:
        """Wait until ``slot`` has acknowledged more writes than ``after``."""
        async with self._acked:
            await self._acked.wait_for(lambda: self.tally.acks_by_slot[slot.name] > after)

    def rest(self, user_id: int, seconds: float) -> None:
        until = time.monotonic() + seconds
        self.rest_until[user_id] = max(until, self.rest_until.get(user_id, 0.0))

    async def _ack(self, user: ChaosUser, version: int, slot: Slot, kind: str) -> None:
        self.log.acknowledged(user.user_id, version, time.monotonic())
        self.tally.writes[f"{kind} ok"] += 1
        hold = self.hold_after_ack.get(slot.name)
        if hold is not None:
            self.rest(user.user_id, hold)
        async with self._acked:
            self.tally.acks_by_slot[slot.name] += 1
            self._acked.notify_all()

    async def chat_turn(self, user: ChaosUser) -> None:
        slot = self.pick()
        if slot is None or slot.server is None:
            return
        server = slot.server
        floor = self.log.next_floor(user.user_id)
        try:
            started = await self.http.post(
                f"{server.base_url}/api/v1/chat/start", headers=user.headers
            )
            if started.status_code != 201:
                self.tally.writes[f"turn failed ({started.status_code})"] += 1
                return
            session_id = started.json()["session_id"]
            saved = await self._turn(server.ws_url, session_id, user)
        except (httpx.HTTPError, OSError, WebSocketException, TimeoutError) as exc:
            self.tally.writes[f"turn failed ({type(exc).__name__})"] += 1
            return
        if saved is True:
            await self._ack(user, floor, slot, "turn")
        else:
            self.tally.writes[f"turn not saved ({saved})"] += 1

    async def _turn(self, ws_url: str, session_id: str, user: ChaosUser) -> bool | str:
        """True when the turn was answered and its memory saved; else what happened."""
        frame = {
            "type": "query",
            "query": self.rng.choice(QUERIES),
            "turn_id": str(uuid.uuid4()),  # safe to retry with; ignored where not known
        }
        async with asyncio.timeout(TURN_SECONDS):
            async with connect(
                f"{ws_url}/api/v1/chat/ws/{session_id}",
                additional_headers=user.headers,  # the socket authenticates too
                open_timeout=REQUEST_SECONDS,
            ) as ws:
                await ws.send(orjson.dumps(frame).decode())
                outcome: bool | str = True
                async for raw in ws:
                    event: dict[str, Any] = orjson.loads(raw)
                    kind = event.get("type")
                    if kind == "memory_unavailable" and event.get("stage") == "save":
                        outcome = f"save {event.get('outcome', 'failed')}"
                    elif kind == "error":
                        return f"error: {str(event.get('message'))[:60]}"
                    elif kind == "final_response":
                        return outcome
                return "socket closed"

    async def forget(self, user: ChaosUser) -> None:
        slot = self.pick()
        if slot is None or slot.server is None:
            return
        try:
            response = await self.http.delete(
                f"{slot.server.base_url}/api/v1/memory", headers=user.headers
            )
        except httpx.HTTPError as exc:
            self.tally.writes[f"forget failed ({type(exc).__name__})"] += 1
            return
        if response.status_code == 200:
            await self._ack(user, int(response.json()["version"]), slot, "forget")
        else:
            self.tally.writes[f"forget failed ({response.status_code})"] += 1

    # ------------------------------------------------------------------ reads

    async def read(self, user: ChaosUser) -> None:
        slot = self.pick()
        if slot is None or slot.server is None:
            return
        started = time.monotonic()
        try:
            response = await self.http.get(
                f"{slot.server.base_url}/api/v1/memory/context", headers=user.headers
            )
        except httpx.HTTPError:
            self.tally.reads["failed"] += 1
            return
        if response.status_code != 200:
            self.tally.reads["failed"] += 1
            return
        version = int(response.json()["version"])
        verdict = self.log.check(user.user_id, version, started)
        tally = self.tally
        tally.reads["checked"] += 1
        tally.worst = max(tally.worst, verdict.staleness)
        if verdict.beyond(tally.bound):
            stale = StaleRead(
                started - tally.start,
                user.user_id,
                slot.name,
                version,
                verdict.expected,
                verdict.staleness,
            )
            tally.stale.append(stale)
            if len(tally.stale) <= CONFIRMED_STALE_READS:
                # The judge's evidence: Postgres does hold the version the read missed.
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    stale.committed = await self.rig.committed_version(user.user_id)
        elif verdict.staleness > 0:
            tally.reads_behind += 1


async def writer(
    clients: Clients,
    users: list[ChaosUser],
    stop: asyncio.Event,
    *,
    forget_share: float,
    quiet_share: float,
    pause: Callable[[], float],
) -> None:
    """One user's writes are this task's alone, one at a time; resting users wait."""
    rng = clients.rng
    bound = clients.tally.bound
    while not stop.is_set():
        now = time.monotonic()
        awake = [u for u in users if clients.rest_until.get(u.user_id, 0.0) <= now]
        if not awake:
            await asyncio.sleep(pause())
            continue
        user = rng.choice(awake)
        if rng.random() < forget_share:
            await clients.forget(user)
        else:
            await clients.chat_turn(user)
        if rng.random() < quiet_share:
            clients.rest(user.user_id, rng.uniform(1.5, 3.0) * bound)
        await asyncio.sleep(pause())


async def reader(
    clients: Clients, users: list[ChaosUser], stop: asyncio.Event, pause: Callable[[], float]
) -> None:
    rng = clients.rng
    while not stop.is_set():
        await clients.read(rng.choice(users))
        await asyncio.sleep(pause())
