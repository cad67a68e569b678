"""``memlayer chaos``: readers and writers on several processes while faults are injected.

Exit status: 0 when no read was stale beyond the bound, 1 when one was, 2 when the run
could not be set up (what to do is printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

import asyncpg
import httpx

from memlayer.bench_harness import LOCAL_POSTGRES_URL
from memlayer.chaos import report
from memlayer.chaos.faults import FaultKind, FaultRecord, Faults
from memlayer.chaos.history import AckLog
from memlayer.chaos.redis_server import RedisBinariesMissing
from memlayer.chaos.rig import Rig
from memlayer.chaos.server import ServerExited
from memlayer.chaos.workload import Clients, Tally, reader, writer
from memlayer.settings import Settings

ALL_FAULTS = tuple(FaultKind)


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    processes: int = 3
    users: int = 40
    writers: int = 4
    readers: int = 8
    duration: float = 60.0
    fault_every: float = 10.0
    faults: tuple[FaultKind, ...] = ALL_FAULTS
    partition_seconds: float = 4.0
    snapshot_lead_seconds: float = 2.0
    fault_wait_seconds: float = 5.0
    forget_share: float = 0.2
    quiet_share: float = 0.3  # writes after which the user rests 1.5-3 bounds
    writer_pause_ms: float = 60.0
    reader_pause_ms: float = 20.0
    progress_every: float = 5.0
    bound: float | None = None  # seconds; None: the servers' coherence_bound_ms
    seed: int | None = None
    keep: bool = False


class SetupError(RuntimeError):
    """The run could not start; the message says what to do."""


async def run_chaos(settings: Settings, options: ChaosOptions) -> int:
    bound = options.bound if options.bound is not None else settings.coherence_bound_ms / 1000
    server_url = settings.database_url
    if not server_url:
        server_url = LOCAL_POSTGRES_URL
        print(f"memlayer chaos: no MEMLAYER_DATABASE_URL, using the local Postgres ({server_url})")
    if not server_url.startswith("postgresql"):
        return _setup_failed(
            "memlayer chaos needs a Postgres server: set MEMLAYER_DATABASE_URL "
            "(postgresql+asyncpg://...), or leave it unset for the local one. It creates a "
            "database of its own there and drops it at the end; Redis it starts itself "
            "(redis-server must be installed)."
        )
    seed = options.seed if options.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="memlayer-chaos-"))
    say = _say
    say(
        f"memlayer chaos: {options.processes} processes, {options.users} users, "
        f"{options.duration:g} s, faults {', '.join(options.faults) or 'none'} every "
        f"{options.fault_every:g} s, bound {bound:g} s, seed {seed}; files in {workdir}"
    )
    rig = Rig(workdir, server_url, say)
    outcome = 2
    try:
        try:
            await rig.start(options.processes)
        except (OSError, asyncpg.PostgresError) as exc:
            raise SetupError(
                f"cannot create the run's database on {_safe(server_url)}: {exc}. "
                "Is Postgres running, and may this user CREATE DATABASE?"
            ) from exc
        except (RedisBinariesMissing, ServerExited, TimeoutError) as exc:
            raise SetupError(f"{exc}") from exc
        outcome = await _drive(rig, options, bound, rng)
    except SetupError as exc:
        outcome = _setup_failed(str(exc))
    finally:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await rig.aclose()
        if (outcome == 0 and not options.keep) or not rig.has_files():
            rig.remove_workdir()
        else:
            say(f"server logs and Redis files kept in {workdir}")
    return outcome


async def _drive(rig: Rig, options: ChaosOptions, bound: float, rng: random.Random) -> int:
    log = AckLog()
    tally = Tally(bound=bound)
    clients = Clients(rig, log, tally, rng)
    scrapes: dict[int, report.Scrape] = {}
    records: list[FaultRecord] = []
    try:
        try:
            users = await clients.sign_up(options.users)
        except RuntimeError as exc:
            raise SetupError(f"{exc}; the server logs are in {rig.workdir}") from exc
        _say(f"{len(users)} users signed up; running")
        start = time.monotonic()
        tally.start = start
        faults = Faults(
            rig,
            clients,
            rng,
            bound=bound,
            partition_seconds=options.partition_seconds,
            snapshot_lead_seconds=options.snapshot_lead_seconds,
            wait_seconds=options.fault_wait_seconds,
            clock=lambda: time.monotonic() - start,
        )
        stop = asyncio.Event()
        writers = max(1, min(options.writers, len(users)))
        tasks = [
            *(
                asyncio.create_task(
                    writer(
                        clients,
                        users[w::writers],
                        stop,
                        forget_share=options.forget_share,
                        quiet_share=options.quiet_share,
                        pause=_pause(rng, options.writer_pause_ms),
                    )
                )
                for w in range(writers)
            ),
            *(
                asyncio.create_task(
                    reader(clients, users, stop, _pause(rng, options.reader_pause_ms))
                )
                for _ in range(options.readers)
            ),
        ]
        progress = asyncio.create_task(_progress(rig, clients, scrapes, start, options))
        last_fault_end = await _inject_on_schedule(faults, options, bound, start, records)
        end = max(start + options.duration, last_fault_end + bound + 1.0)
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        stop.set()
        await asyncio.gather(*tasks)
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
        await _scrape_all(rig, clients, scrapes)
        elapsed = time.monotonic() - start
    finally:
        await clients.aclose()
    for line in report.summary(
        processes=options.processes,
        users=options.users,
        seconds=elapsed,
        tally=tally,
        faults=records,
        scrape=report.combine(scrapes.values()),
        scraped=len(scrapes),
    ):
        print(line)
    return 1 if tally.stale else 0


async def _inject_on_schedule(
    faults: Faults,
    options: ChaosOptions,
    bound: float,
    start: float,
    records: list[FaultRecord],
) -> float:
    """Inject faults in turn; returns when the last one ended (monotonic)."""
    last_end = start
    if not options.faults:
        return last_end
    first = min(options.fault_every / 2, 3.0)
    latest_start = options.duration - bound - 1.0
    for i, kind in enumerate(cycle(options.faults)):
        at = first + i * options.fault_every
        if at > latest_start:
            break
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        try:
            record = await faults.inject(kind)
        except (ServerExited, TimeoutError, RuntimeError, OSError) as exc:
            # The run goes on with what still works; the failure is in the fault log.
            elapsed = time.monotonic() - start
            record = FaultRecord(kind, "?", elapsed - 0.0, 0.0, f"fault failed: {exc!r}"[:300])
        records.append(record)
        _say(report.fault_line(record))
        last_end = time.monotonic()
    return last_end


async def _progress(
    rig: Rig,
    clients: Clients,
    scrapes: dict[int, report.Scrape],
    start: float,
    options: ChaosOptions,
) -> None:
    while True:
        await asyncio.sleep(options.progress_every)
        await _scrape_all(rig, clients, scrapes)
        live = [slot.name for slot in rig.live()]
        _say(report.progress_line(time.monotonic() - start, clients.tally, live))


async def _scrape_all(rig: Rig, clients: Clients, scrapes: dict[int, report.Scrape]) -> None:
    """Each live process's /metrics, kept by pid (a killed one keeps its last scrape)."""
    for slot in rig.live():
        server = slot.server
        if server is None or server.pid is None:
            continue
        try:
            response = await clients.http.get(f"{server.base_url}/metrics", timeout=5)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            scrapes[server.pid] = report.Scrape.parse(response.text)


def _pause(rng: random.Random, mean_ms: float) -> Callable[[], float]:
    """Think time around ``mean_ms`` (uniform ±50%), so clients do not march in step."""
    return lambda: rng.uniform(0.5, 1.5) * mean_ms / 1000


def _say(line: str) -> None:
    print(line, flush=True)


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _setup_failed(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
