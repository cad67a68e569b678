"""Prometheus metrics of several API worker processes, read as one service.

``memlayer serve --workers N`` runs N uvicorn worker processes. Each keeps its metrics in
memory-mapped files under ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
mode, chosen when the client library is imported), so whichever worker answers
``/metrics`` or ``/api/v1/ops/summary`` can read every worker's numbers:

* counters and histograms are summed over every worker that ever ran under this ``serve``
  (a worker that died keeps its counts, so totals never go backwards);
* each gauge declares how its workers combine (``multiprocess_mode``): ``livesum`` for "how
  many workers have X" (breaker open, dirty users, sockets, workers), ``max`` for a
  generation. A gauge without one would be exported once per pid;
* ``live*`` gauges of a worker that is gone are dropped: at its clean exit, and, for a
  worker killed outright, at the next collection (its pid no longer exists).

With one worker and no directory nothing here is used: metrics stay in process memory.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger("memlayer")

ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client names a live gauge's file gauge_<mode>_<pid>.db; every worker has one
# (memlayer_api_workers is livesum), so these files are the roll of workers.
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def metrics_dir() -> Path | None:
    """The multiprocess directory this process writes its metrics to, if any."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


@contextmanager
def prepared_dir(workers: int) -> Iterator[Path | None]:
    """The directory ``serve`` gives its workers, set in the environment they inherit.

    A directory the user set is respected: emptied of metric files at start (the client
    library requires a fresh one per run) and left in place. Otherwise, with several
    workers, a temporary directory of our own, removed when the block ends. One worker and
    no directory: none at all (metrics in process memory, as always).
    """
    given = metrics_dir()
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        for stale in given.glob("*.db"):
            stale.unlink()
        yield given
        return
    if workers <= 1:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="memlayer-metrics-"))
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def live_worker_pids(path: Path) -> set[int]:
    """Pids with live-gauge files whose process still exists (dead ones are swept)."""
    pids = {int(m.group(1)) for f in _files(path) if (m := _LIVE_GAUGE_FILE.match(f))}
    alive = set()
    for pid in pids:
        if _exists(pid):
            alive.add(pid)
        else:  # killed without a clean exit: its live gauges must stop counting
            mark_process_dead(pid, str(path))
    return alive


def aggregate_registry(path: Path) -> CollectorRegistry:
    """A registry that reads every worker's metrics (built per read, as the library advises)."""
    workers = live_worker_pids(path)  # sweeps dead workers' live gauges before reading
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(path))
    registry.register(_WorkersProcessCollector(workers))
    return registry


def worker_stopped() -> None:
    """Drop this worker's live gauges (a clean exit; a kill is swept at collection)."""
    path = metrics_dir()
    if path is not None:
        mark_process_dead(os.getpid(), str(path))


class _WorkersProcessCollector(Collector):
    """CPU time and resident memory summed over the live workers.

    The client library's process metrics describe one process and are not exported in
    multiprocess mode; the dashboard's "API process CPU" needs the service's.
    """

    def __init__(self, pids: Iterable[int]) -> None:
        self._pids = tuple(pids)

    def collect(self) -> Iterable[Metric]:
        cpu = 0.0
        rss = 0.0
        for pid in self._pids:
            for family in ProcessCollector(pid=_constant(pid), registry=None).collect():
                for sample in family.samples:
                    if sample.name == "process_cpu_seconds_total":
                        cpu += sample.value
                    elif sample.name == "process_resident_memory_bytes":
                        rss += sample.value
        yield CounterMetricFamily(
            "process_cpu_seconds", "CPU time of the live API workers, summed.", value=cpu
        )
        yield GaugeMetricFamily(
            "process_resident_memory_bytes",
            "Resident memory of the live API workers, summed.",
            value=rss,
        )


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


def _files(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
