"""Watching the service while the swarm runs: its hit ratio and Postgres load as they go.

The master (or the only process) reads the service's ops summary every
``--memlayer-scrape-interval`` seconds, logs a line per reading so headless runs show the
numbers, feeds the web UI's memlayer tab (:mod:`web_tab`), and when Locust quits prints a
summary table and writes the ``--memlayer-report`` JSON. Workers only count which tier
served each persona's memory and send the counts to the master with their stats reports.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import gevent
import requests
from load_options import option
from locust.env import Environment
from locust.event import Events
from locust.runners import MasterRunner, WorkerRunner
from service_counters import (
    SUMMARY_PATH,
    ServiceCounters,
    Window,
    format_ratio,
    format_shares,
    window,
)
from tally import MemorySourceTally
from web_tab import add_memlayer_tab

log = logging.getLogger("memlayer.load")

REPORT_KEY = "memlayer_memory_sources"  # a worker's counts in its report to the master


class ServiceWatcher:
    """Reads the ops summary in a greenlet, every ``interval`` seconds (0: never).

    Keeps the latest window (since the previous reading) and the one since the test
    started; shows them with the memory sources the personas saw.
    """

    def __init__(
        self, environment: Environment, sources: MemorySourceTally, interval: float
    ) -> None:
        self.environment = environment
        self.sources = sources
        self.interval = interval
        self.baseline: tuple[float, ServiceCounters] | None = None
        self.previous: tuple[float, ServiceCounters] | None = None
        self.latest: Window | None = None
        self.error: str | None = None
        self._greenlet: gevent.Greenlet | None = None

    def summary_url(self) -> str | None:
        host = self.environment.host
        if not host:
            hosts = {cls.host for cls in self.environment.user_classes if cls.host}
            host = hosts.pop() if len(hosts) == 1 else None
        return f"{host.rstrip('/')}{SUMMARY_PATH}" if host else None

    def start(self) -> None:
        if self.interval > 0 and self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def restart_baseline(self) -> None:
        self.baseline = None
        self.read()

    def _loop(self) -> None:
        while True:
            self.read()
            if self.latest is not None and self.previous is not None:
                log.info("memlayer: %s", self.one_line())
            gevent.sleep(self.interval)

    def read(self) -> None:
        url = self.summary_url()
        if url is None:
            self.error = "no host to read"
            return
        try:
            response = requests.get(url, timeout=min(max(self.interval, 1.0), 5.0))
            response.raise_for_status()
            summary = response.json()
        except (requests.RequestException, ValueError) as exc:
            if self.error is None:
                log.warning("memlayer: cannot read %s: %s", url, exc)
            self.error = str(exc)
            return
        self.error = None
        now, counters = time.monotonic(), ServiceCounters.from_summary(summary)
        if self.baseline is None:
            self.baseline = (now, counters)
        if self.previous is not None and now > self.previous[0]:
            self.latest = window(self.previous[1], counters, now - self.previous[0])
        self.previous = (now, counters)

    def since_start(self) -> Window | None:
        if self.baseline is None or self.previous is None:
            return None
        seconds = self.previous[0] - self.baseline[0]
        return window(self.baseline[1], self.previous[1], seconds) if seconds > 0 else None

    def one_line(self) -> str:
        latest, total = self.latest, self.since_start()
        parts = []
        if latest is not None:
            parts.append(
                f"hit ratio {format_ratio(latest.hit_ratio)} "
                f"({format_shares(latest.tier_shares)}; last {latest.seconds:.0f}s), "
                f"db {latest.db_qps:.1f} q/s"
            )
        if total is not None:
            parts.append(f"since start {format_ratio(total.hit_ratio)}, db {total.db_qps:.1f} q/s")
        return "; ".join(parts) or (self.error or "no reading yet")

    def rows(self) -> list[dict[str, str]]:
        """The memlayer table: service numbers, then memory sources per persona."""
        latest, total = self.latest, self.since_start()
        rows = [
            {"metric": "cache hit ratio (last reading)", "value": _ratio_of(latest)},
            {"metric": "cache hit ratio (since start)", "value": _ratio_of(total)},
            {"metric": "served by tier (last reading)", "value": _shares_of(latest)},
            {"metric": "served by tier (since start)", "value": _shares_of(total)},
            {"metric": "postgres queries/s (last reading)", "value": _qps_of(latest)},
            {"metric": "postgres queries/s (since start)", "value": _qps_of(total)},
        ]
        if self.error:
            rows.append({"metric": "ops summary error", "value": self.error[:120]})
        rows.extend(source_rows(self.sources.snapshot()))
        return rows

    def summary(self) -> dict[str, Any]:
        latest, total = self.latest, self.since_start()
        return {
            "summary_url": self.summary_url(),
            "hit_ratio_last": latest.hit_ratio if latest else None,
            "hit_ratio_since_start": total.hit_ratio if total else None,
            "tier_shares_since_start": _shares_dict(total),
            "db_qps_last": latest.db_qps if latest else None,
            "db_qps_since_start": total.db_qps if total else None,
            "cache_lookups_since_start": total.cache_lookups if total else None,
            "summary_error": self.error,
            "memory_sources": self.sources.snapshot(),
        }

    def table(self) -> str:
        rows = self.rows()
        width = max(len(row["metric"]) for row in rows)
        lines = ["memlayer summary", "-" * (width + 30)]
        lines += [f"{row['metric']:<{width}}  {row['value']}" for row in rows]
        return "\n".join(lines)


def _ratio_of(w: Window | None) -> str:
    return format_ratio(w.hit_ratio) if w else "n/a"


def _shares_of(w: Window | None) -> str:
    return format_shares(w.tier_shares) if w else "n/a"


def _shares_dict(w: Window | None) -> dict[str, float] | None:
    shares = w.tier_shares if w else None
    return shares.as_dict() if shares is not None else None


def _qps_of(w: Window | None) -> str:
    return f"{w.db_qps:.1f}" if w else "n/a"


def source_rows(counts: dict[str, dict[str, int]]) -> list[dict[str, str]]:
    rows = []
    for persona, sources in counts.items():
        total = sum(sources.values()) or 1
        shares = ", ".join(
            f"{source} {n} ({n / total:.0%})" for source, n in sorted(sources.items())
        )
        rows.append({"metric": f"memory source: {persona}", "value": shares})
    return rows


class LiveView:
    """The watcher and the swarm's memory-source counts, wired into Locust's events."""

    def __init__(self, sources: MemorySourceTally) -> None:
        self.sources = sources
        self.watcher: ServiceWatcher | None = None  # on the master or the single process

    def attach(self, events: Events) -> None:
        events.init.add_listener(self.on_init)
        events.test_start.add_listener(self.on_test_start)
        events.reset_stats.add_listener(self.on_reset_stats)
        events.quitting.add_listener(self.on_quitting)

    def on_init(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            # Workers run users; their memory-source counts ride along in each stats report.
            @environment.events.report_to_master.add_listener
            def _send_sources(client_id: str, data: dict[str, Any], **_: Any) -> None:
                data[REPORT_KEY] = self.sources.drain()

            return

        if isinstance(runner, MasterRunner):

            @environment.events.worker_report.add_listener
            def _merge_sources(client_id: str, data: dict[str, Any], **_: Any) -> None:
                self.sources.merge(data.get(REPORT_KEY) or {})

        interval = float(option(environment, "memlayer_scrape_interval", 5.0))
        self.watcher = ServiceWatcher(environment, self.sources, interval)
        if runner is not None:  # run_single_user has no runner and needs no dashboard
            self.watcher.start()
        if environment.web_ui is not None:
            add_memlayer_tab(environment.web_ui, self.watcher.rows, self.watcher.summary)

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        if not isinstance(environment.runner, WorkerRunner) and self.watcher is not None:
            self.on_reset_stats()

    def on_reset_stats(self, **_: Any) -> None:
        self.sources.reset()
        if self.watcher is not None and self.watcher.interval > 0:
            gevent.spawn(self.watcher.restart_baseline)

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        watcher = self.watcher
        if isinstance(environment.runner, WorkerRunner) or watcher is None:
            return
        if watcher.interval > 0:
            watcher.read()  # the last word on the counters, after the last request
        watcher.stop()
        log.info("\n%s", watcher.table())
        report = str(option(environment, "memlayer_report", ""))
        if report:
            Path(report).parent.mkdir(parents=True, exist_ok=True)
            Path(report).write_text(json.dumps(watcher.summary(), indent=2) + "\n")
