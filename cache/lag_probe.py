"""Invalidation lag in production: write-to-arrival time of short-lived probe keys.

Every process writes ``<prefix>:v1:probe:<pid>:<wall ns>`` about once a second (PX a
few seconds). The key is under a tracked prefix, so every process's invalidation link
receives its name; the observer records ``now - <wall ns>`` into
``memlayer_near_cache_invalidation_lag_seconds``. That is the same path a real write's
invalidation takes (a command executes, Redis queues the name to every tracking link),
so the histogram is the lag of near-cache evictions, continuously.

Wall clocks, because the writer and the observer are different processes: on one host
they agree; across hosts their skew (NTP: typically well under a millisecond, but not
bounded) adds to or subtracts from each sample. Negative samples are recorded as 0.

A probe key is named twice: when written, and when it expires (or is deleted). Only
the first sighting is a sample: names seen are remembered (bounded), and a name whose
age exceeds the key's lifetime can only be its expiry. Probes written before this
link was established are ignored (their write may have been missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable

from memlayer.cache import keys
from memlayer.cache import near_metrics as metrics
from memlayer.cache.client import RedisClient
from memlayer.cache.errors import REDIS_ERRORS
from memlayer.cache.keys import ProbeKey

log = logging.getLogger("memlayer.cache")

_SEEN_MAX = 4096


class LagObserver:
    """Turns probe sightings into lag samples (a ``ProbeObserver`` of the link)."""

    __slots__ = ("_clock_ns", "_lifetime_ns", "_record", "_seen", "_since_ns")

    def __init__(
        self,
        lifetime_ms: int,
        *,
        record: Callable[[float], None] = metrics.INVALIDATION_LAG.observe,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._lifetime_ns = lifetime_ms * 1_000_000
        self._record = record
        self._clock_ns = clock_ns
        self._seen: OrderedDict[ProbeKey, None] = OrderedDict()
        self._since_ns = clock_ns()

    def link_established(self) -> None:
        self._since_ns = self._clock_ns()
        self._seen.clear()

    def probe_seen(self, probe: ProbeKey) -> None:
        if probe.written_ns < self._since_ns or probe in self._seen:
            return
        self._seen[probe] = None
        if len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
        lag_ns = self._clock_ns() - probe.written_ns
        if lag_ns >= self._lifetime_ns:
            return  # its expiry, seen after we forgot its write
        self._record(max(lag_ns, 0) / 1e9)


class LagProbeWriter:
    """Writes one probe key per interval through the app's client (a background task)."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        *,
        interval_s: float,
        lifetime_ms: int,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._interval = interval_s
        self._lifetime_ms = lifetime_ms
        self._clock_ns = clock_ns
        self._pid = os.getpid()
        self._task: asyncio.Task[None] | None = None

    async def write_once(self) -> None:
        """One probe now; raises Redis errors (the loop counts none: the link reports)."""
        name = keys.probe_key(self._prefix, self._pid, self._clock_ns())
        await self._client.set(name, b"1", px=self._lifetime_ms)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="memlayer-lag-probe")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.write_once()
            await asyncio.sleep(self._interval)
