"""`memlayer bench-sessions`: does a chat server's memory stay flat under sustained turns?

It drives thousands of chat turns over hundreds of sessions (signed-in and anonymous, each
session over several sockets, as reconnecting clients do) against a real ``memlayer serve``
process that it starts, and prints:

* the server's resident memory (RSS) after a warm-up and at the end; the growth in between
  must stay under 15 MB (per-session state that is never freed shows up here);
* Postgres work per turn, counted on the wire by a small proxy between the server and
  Postgres: statements executed (extended-protocol Execute messages) and round trips
  including ``BEGIN``/``COMMIT`` (plus simple-protocol Query messages), for signed-in and
  anonymous turns separately.

It needs real Postgres and Redis (``MEMLAYER_DATABASE_URL``, ``MEMLAYER_REDIS_URL``; with
neither set, the local ones on their default ports) and uses a database of its own on that
server (``memlayer_bench_sessions``, created afresh).
The server it starts has its per-address abuse limits raised (every session comes from
127.0.0.1) and says so. ``--serve-command`` runs another build's server instead, to compare
(e.g. ``--serve-command "/path/to/other/.venv/bin/memlayer serve"``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import orjson
from sqlalchemy.engine import make_url
from websockets.asyncio.client import connect

from memlayer.bench_harness import LOCAL_POSTGRES_URL, LOCAL_REDIS_URL
from memlayer.settings import Settings

BENCH_DATABASE = "memlayer_bench_sessions"
GROWTH_BUDGET_MB = 15.0
TURNS_PER_SOCKET = 5
QUERIES = (
    "강남구 아파트 시세 알려줘",
    "마포구 전세 10억 이하로 찾아줘",
    "대출 한도는 얼마나 되나요?",
    "전세 계약할 때 주의할 점은?",
    "송파구 오피스텔 월세 시세",
    "깡통전세 위험은 어떻게 확인하나요?",
    "서초구 아파트 매매 세금",
    "용산구 빌라 전세사기 위험",
)


# --- counting Postgres work on the wire ------------------------------------------------


@dataclass
class WireCount:
    executes: int = 0  # extended protocol: one per statement executed
    queries: int = 0  # simple protocol: BEGIN, COMMIT, ROLLBACK

    def snapshot(self) -> tuple[int, int]:
        return self.executes, self.queries


class CountingProxy:
    """A TCP proxy to Postgres that counts what the client asks the server to run.

    Frontend messages after the startup packet are ``[type byte][int32 length][body]``;
    ``E`` is Execute and ``Q`` a simple query. The server must not switch to TLS (the
    server's URL gets ``ssl=disable``), or there would be nothing to read.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.count = WireCount()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pump(reader, up_writer, count=True),
            self._pump(up_reader, writer, count=False),
            return_exceptions=True,
        )

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool
    ) -> None:
        buffer = b""
        started = False
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                if not count:
                    continue
                buffer += data
                while True:
                    if not started:  # SSLRequest, then the StartupMessage: no type byte
                        if len(buffer) < 8:
                            break
                        length = int.from_bytes(buffer[:4], "big")
                        if len(buffer) < length:
                            break
                        started = int.from_bytes(buffer[4:8], "big") == 196608
                        buffer = buffer[length:]
                        continue
                    if len(buffer) < 5:
                        break
                    length = int.from_bytes(buffer[1:5], "big")
                    if len(buffer) < 1 + length:
                        break
                    kind = buffer[:1]
                    if kind == b"E":
                        self.count.executes += 1
                    elif kind == b"Q":
                        self.count.queries += 1
                    buffer = buffer[1 + length :]
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


# --- the server under test ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Server:
    process: asyncio.subprocess.Process
    base_url: str
    log: Path

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://")

    async def stop(self) -> None:
        """Stop the server this command started, by its PID."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(20):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_server(command: Sequence[str], env: dict[str, str], log: Path) -> Server:
    port = _free_port()
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command, "--port", str(port), env={**os.environ, **env}, stdout=out, stderr=out
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2) as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"the server exited; its log is {log}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)  # polling a starting process
    await server.stop()
    raise RuntimeError(f"the server did not become ready in 60 s; its log is {log}")


# --- the traffic -----------------------------------------------------------------------


@dataclass
class BenchSession:
    session_id: str
    token: str | None


@dataclass
class Tally:
    turns: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)


async def make_sessions(
    http: httpx.AsyncClient, sessions: int, anonymous_share: float
) -> list[BenchSession]:
    anonymous = round(sessions * anonymous_share)
    signed_in = sessions - anonymous
    users = max(1, signed_in // 2)  # two sessions per user, as with two tabs
    tokens = []
    for _ in range(users):
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        response = await http.post(
            "/api/v1/auth/register", json={"email": email, "password": secrets.token_urlsafe(12)}
        )
        response.raise_for_status()
        tokens.append(response.json()["access_token"])
    made: list[BenchSession] = []
    for i in range(sessions):
        token = tokens[i % users] if i < signed_in else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await http.post("/api/v1/chat/start", headers=headers)
        response.raise_for_status()
        made.append(BenchSession(response.json()["session_id"], token))
    return made


async def visit(ws_base: str, session: BenchSession, turns: int, tally: Tally) -> None:
    """One socket of a session: ``turns`` turns, each until its final_response."""
    headers = {"Authorization": f"Bearer {session.token}"} if session.token else None
    url = f"{ws_base}/api/v1/chat/ws/{session.session_id}"
    try:
        async with connect(url, additional_headers=headers, max_size=2**22) as ws:
            hello = orjson.loads(await ws.recv())
            if hello.get("type") != "connected":
                raise RuntimeError(f"expected connected, got {hello.get('type')}")
            for n in range(turns):
                query = QUERIES[(tally.turns + n) % len(QUERIES)]
                await ws.send(orjson.dumps({"type": "query", "query": query}).decode())
                while True:
                    event = orjson.loads(await ws.recv())
                    if event["type"] == "final_response":
                        tally.turns += 1
                        break
                    if event["type"] == "error":
                        raise RuntimeError(event.get("message", "error event"))
    except Exception as exc:  # a failed visit is counted and reported, the run goes on
        tally.failures += 1
        if len(tally.errors) < 5:
            tally.errors.append(f"{type(exc).__name__}: {exc}")


async def drive(
    ws_base: str, sessions: list[BenchSession], turns: int, concurrency: int, tally: Tally
) -> None:
    """``turns`` turns over ``sessions``, round robin, ``TURNS_PER_SOCKET`` per socket."""
    plan: list[tuple[BenchSession, int]] = []
    remaining = turns
    for session in itertools.cycle(sessions):
        if remaining <= 0:
            break
        n = min(TURNS_PER_SOCKET, remaining)
        plan.append((session, n))
        remaining -= n
    queue = iter(plan)
    done = 0

    async def worker() -> None:
        nonlocal done
        for session, n in queue:
            await visit(ws_base, session, n, tally)
            done += n
            if done % max(1, turns // 10) < n:
                sys.stderr.write(f"\r  {done:>7,} / {turns:,} turns")
                sys.stderr.flush()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sys.stderr.write("\n")


# --- the run ---------------------------------------------------------------------------


async def fresh_database(settings: Settings) -> str:
    url = make_url(settings.database_url or "")
    admin_dsn = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    finally:
        await admin.close()
    bench_url = url.set(database=BENCH_DATABASE).render_as_string(hide_password=False)
    from alembic import command

    from memlayer.migrations import alembic_config

    await asyncio.to_thread(command.upgrade, alembic_config(bench_url), "head")
    return bench_url


@dataclass
class Phase:
    name: str
    turns: int
    executes: int
    queries: int

    def row(self) -> str:
        per = self.turns or 1
        return (
            f"  {self.name:<22} {self.turns:>8,} {self.executes / per:>14.2f} "
            f"{(self.executes + self.queries) / per:>18.2f}"
        )


async def run_bench_sessions(
    settings: Settings,
    *,
    sessions: int,
    turns: int,
    warmup_turns: int,
    concurrency: int,
    anonymous_share: float,
    serve_command: str | None,
) -> int:
    if settings.embedded and not settings.redis_url:
        settings = settings.model_copy(
            update={"database_url": LOCAL_POSTGRES_URL, "redis_url": LOCAL_REDIS_URL}
        )
        print(
            "memlayer bench-sessions: nothing configured, using the local Postgres "
            f"({LOCAL_POSTGRES_URL}) and Redis ({LOCAL_REDIS_URL})"
        )
    if settings.embedded or not settings.redis_url:
        print(
            "memlayer bench-sessions needs real Postgres and Redis: set MEMLAYER_DATABASE_URL "
            "and MEMLAYER_REDIS_URL (see README), or set neither to use the local ones.",
            file=sys.stderr,
        )
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    bench_url = await fresh_database(settings)
    target = make_url(bench_url)
    proxy = await CountingProxy(target.host or "127.0.0.1", target.port or 5432).start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).update_query_dict({"ssl": "disable"})
    command = (
        shlex.split(serve_command)
        if serve_command
        else [sys.executable, "-m", "memlayer.cli", "serve"]
    )
    env = {
        "MEMLAYER_DATABASE_URL": proxied.render_as_string(hide_password=False),
        "MEMLAYER_REDIS_URL": settings.redis_url,
        "MEMLAYER_CACHE_KEY_PREFIX": f"memlayer-bench-sessions-{uuid.uuid4().hex[:8]}",
        "MEMLAYER_JWT_SECRET": secrets.token_urlsafe(48),
        "MEMLAYER_LOG_LEVEL": "WARNING",
        # Every session of this benchmark comes from 127.0.0.1.
        "MEMLAYER_RATE_LIMIT_REGISTER": "1000000/minute",
        "MEMLAYER_RATE_LIMIT_ANONYMOUS_START": "1000000/minute",
    }
    log = Path(f"/tmp/memlayer-bench-sessions-{os.getpid()}.log")
    print(
        f"memlayer bench-sessions: {sessions} sessions ({anonymous_share:.0%} anonymous), "
        f"{warmup_turns:,} warm-up + {turns:,} measured turns, concurrency {concurrency}, "
        f"{TURNS_PER_SOCKET} turns per socket"
    )
    print(f"  server: {' '.join(command)} (log {log}); abuse limits raised for 127.0.0.1")
    server = await start_server(command, env, log)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            made = await make_sessions(http, sessions, anonymous_share)
        signed = [s for s in made if s.token]
        anonymous = [s for s in made if not s.token]
        tally = Tally()
        sys.stderr.write("  warm-up\n")
        await drive(server.ws_url, made, warmup_turns, concurrency, tally)
        rss_warm = rss_mb(server.process.pid)
        phases = []
        for name, group in (("signed-in turns", signed), ("anonymous turns", anonymous)):
            if not group:
                continue
            share = len(group) / len(made)
            before = proxy.count.snapshot()
            done_before = tally.turns
            sys.stderr.write(f"  measuring {name}\n")
            await drive(server.ws_url, group, round(turns * share), concurrency, tally)
            after = proxy.count.snapshot()
            phases.append(
                Phase(
                    name,
                    tally.turns - done_before,
                    after[0] - before[0],
                    after[1] - before[1],
                )
            )
        rss_end = rss_mb(server.process.pid)
    finally:
        await server.stop()
        await proxy.aclose()

    growth = rss_end - rss_warm
    print()
    print("  ───────────────────────────────────────────────────────────────────")
    print(f"  {'':<22} {'turns':>8} {'statements/turn':>14} {'round trips/turn':>18}")
    for phase in phases:
        print(phase.row())
    print("  ───────────────────────────────────────────────────────────────────")
    print(f"  server RSS after warm-up      {rss_warm:>8.1f} MB")
    print(f"  server RSS at the end         {rss_end:>8.1f} MB")
    verdict = "ok" if growth < GROWTH_BUDGET_MB else "OVER BUDGET"
    print(f"  growth (budget < {GROWTH_BUDGET_MB:g} MB)       {growth:>8.1f} MB   {verdict}")
    print(f"  failed socket visits          {tally.failures:>8}")
    for error in tally.errors:
        print(f"    {error}")
    print("  (statements = Execute messages; round trips add BEGIN/COMMIT and other simple")
    print("   queries; both counted on the wire between the server and Postgres)")
    return 0 if growth < GROWTH_BUDGET_MB and tally.failures == 0 else 1
