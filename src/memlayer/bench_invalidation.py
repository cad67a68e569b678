"""`memlayer bench-invalidation`: write in one process, eviction in another — how late?

For each invalidation mechanism a receiver *process* is started (this module, run with
``receive``); when it is listening, this process writes ``--writes`` context keys one at
a time (paced, so the number is lag and not queueing), noting the wall clock before each
write is sent. The receiver notes the wall clock at which each key's invalidation was
handled and reports back; lag = received - sent, same host, same clock.

Mechanisms:

* ``tracking`` — what the near-cache uses: the receiver runs an ``InvalidationLink``
  (client tracking, BCAST) with a ``NearCache`` subscribed; the writer runs a Lua SET.
* ``channel`` — the alternative: the writer's script also PUBLISHes the key's id on a
  channel the receiver subscribes to (every write path would have to do that).

Target: p99 < 10 ms on loopback. Needs MEMLAYER_REDIS_URL (a standalone Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Sequence

from redis.asyncio import Redis

from memlayer.bench_harness import LOCAL_REDIS_URL
from memlayer.cache import keys
from memlayer.cache.invalidation import InvalidationLink
from memlayer.cache.keys import CONTEXT_FAMILY, EntityKey
from memlayer.cache.near import NearCache
from memlayer.settings import Settings

MODES = ("tracking", "channel")
GEN = 1
_SET = "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1"
_SET_AND_PUBLISH = (
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "redis.call('PUBLISH', ARGV[3], ARGV[4]) return 1"
)


def _channel(prefix: str) -> str:
    return f"{prefix}:{keys.SCHEMA_TAG}:invalidations"


# ---------------------------------------------------------------- the receiver


class _Arrivals:
    """A LinkSubscriber noting when each context key's invalidation was handled."""

    def __init__(self, count: int) -> None:
        self.at: dict[int, int] = {}
        self.count = count
        self.done = asyncio.Event()

    def note(self, entity_id: int) -> None:
        self.at.setdefault(entity_id, time.time_ns())
        if len(self.at) >= self.count:
            self.done.set()

    def link_established(self) -> None: ...

    def link_lost(self) -> None: ...

    def flushed(self) -> None: ...

    def epoch_changed(self) -> None: ...

    def invalidated(self, keys: Sequence[EntityKey]) -> None:
        for key in keys:
            if key.family == CONTEXT_FAMILY:
                self.note(int(key.entity_id))


async def _receive(mode: str, url: str, prefix: str, count: int, wait_s: float) -> None:
    arrivals = _Arrivals(count)
    if mode == "tracking":
        link = InvalidationLink.for_url(url, prefix, Settings(redis_url=url))
        near: NearCache[int] = NearCache(
            max_entries=count + 1, max_bytes=1 << 24, max_age_s=3600.0, version_of=int
        )
        link.subscribe(near)
        link.subscribe(arrivals)
        link.start()
        await asyncio.wait_for(link.wait_established(), 10)
        print("ready", flush=True)
        try:
            await asyncio.wait_for(arrivals.done.wait(), wait_s)
        except TimeoutError:
            pass
        await link.aclose()
    else:
        client = Redis.from_url(url, protocol=2)
        pubsub = client.pubsub()
        await pubsub.subscribe(_channel(prefix))
        await pubsub.get_message(timeout=5)  # the confirmation
        print("ready", flush=True)
        deadline = time.monotonic() + wait_s
        while not arrivals.done.is_set() and time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=0.5)
            if message is not None and message["type"] == "message":
                arrivals.note(int(message["data"]))
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    print(json.dumps(arrivals.at), flush=True)


# ------------------------------------------------------------------ the writer


async def _measure(mode: str, url: str, writes: int, interval_s: float) -> tuple[list[float], int]:
    """Lags in ms of one mode, and how many writes were never seen by the receiver."""
    prefix = f"memlayer-bench-{uuid.uuid4().hex[:8]}"
    wait_s = writes * interval_s * 2 + 10
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "memlayer.bench_invalidation",
        "receive",
        *("--mode", mode, "--url", url, "--prefix", prefix),
        *("--count", str(writes), "--wait", str(wait_s)),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        ready = await asyncio.wait_for(child.stdout.readline(), 15)
        if ready.strip() != b"ready":
            raise RuntimeError(f"the {mode} receiver did not start (said {ready!r})")
        client = Redis.from_url(url)
        script = client.register_script(_SET_AND_PUBLISH if mode == "channel" else _SET)
        sent: dict[int, int] = {}
        for user in range(writes):
            name = keys.context_key(prefix, user, GEN)
            sent[user] = time.time_ns()
            await script(keys=[name], args=[b"v", 60_000, _channel(prefix), user])
            await asyncio.sleep(interval_s)
            if (user + 1) % max(1, writes // 4) == 0:
                print(f"  {mode}: {user + 1}/{writes} writes", flush=True)
        await client.aclose()
        report = await asyncio.wait_for(child.stdout.readline(), wait_s + 15)
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()  # our own child, by its handle
            await child.wait()
    received = {int(k): v for k, v in json.loads(report).items()}
    lags = [(received[u] - sent[u]) / 1e6 for u in sent if u in received]
    return lags, writes - len(lags)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_bench_invalidation(
    settings: Settings, *, writes: int, interval_ms: float, modes: Sequence[str]
) -> int:
    url = settings.redis_url
    if url is None:
        url = LOCAL_REDIS_URL
        print(f"memlayer bench-invalidation: no MEMLAYER_REDIS_URL, using the local {url}")
    if url.partition("://")[0].endswith("+cluster"):
        print(
            "memlayer bench-invalidation needs a standalone Redis: set MEMLAYER_REDIS_URL "
            "to one (e.g. redis://127.0.0.1:6379/0). The near-cache is off on Redis Cluster "
            "(client tracking there is per node).",
            file=sys.stderr,
        )
        return 2
    rows = []
    for mode in modes:
        print(f"{mode}: {writes} writes, one every {interval_ms:g} ms", flush=True)
        lags, lost = await _measure(mode, url, writes, interval_ms / 1000)
        if not lags:
            rows.append([mode, str(writes), "0", "-", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                mode,
                str(writes),
                str(len(lags)),
                f"{_percentile(lags, 0.50):.2f}",
                f"{_percentile(lags, 0.90):.2f}",
                f"{_percentile(lags, 0.99):.2f}",
                f"{max(lags):.2f}",
                f"{statistics.fmean(lags):.2f}",
            ]
        )
        if lost:
            print(f"  {mode}: {lost} writes were never seen by the receiver", flush=True)
    header = ["mode", "writes", "seen", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("\nInvalidation lag: write sent (process A) -> invalidation handled (process B)")
    for row in [header, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    print("target: p99 < 10 ms on loopback")
    return 0


def _main(argv: list[str] | None = None) -> None:
    """The receiver side, run as a child process by the bench."""
    parser = argparse.ArgumentParser(prog="python -m memlayer.bench_invalidation")
    sub = parser.add_subparsers(dest="command", required=True)
    receive = sub.add_parser("receive")
    receive.add_argument("--mode", choices=MODES, required=True)
    receive.add_argument("--url", required=True)
    receive.add_argument("--prefix", required=True)
    receive.add_argument("--count", type=int, required=True)
    receive.add_argument("--wait", type=float, required=True)
    args = parser.parse_args(argv)
    asyncio.run(_receive(args.mode, args.url, args.prefix, args.count, args.wait))


if __name__ == "__main__":
    _main()
