"""Run Locust headless against a live memlayer and hand back what it measured.

A smoke test of the real server then reads in a few lines::

    result = run_locust("http://127.0.0.1:8000", users=50, spawn_rate=25, run_time="20s",
                        credentials=tmp_path / "credentials.csv", workdir=tmp_path)
    assert result.returncode == 0, result.output_tail
    assert result.entry("WS", "turn").failures == 0
    assert result.memory_source_share("returning", "cache") > 0.8

Locust runs as a subprocess because it monkey-patches the whole interpreter with gevent,
which a pytest process running asyncio tests must not get. No Locust import here.

Also a command line: ``python loadtests/smoke.py --host http://127.0.0.1:8000 -u 50 -t 20s``
(``--redis-url`` adds Redis commands per chat turn, from ``INFO commandstats`` read before
and after the run: :mod:`redis_commands`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
CREDENTIALS = Path(__file__).with_name("credentials.csv")  # where `memlayer seed` writes


@dataclass(frozen=True)
class Entry:
    """One row of Locust's ``_stats.csv`` (times in milliseconds)."""

    request_type: str
    name: str
    requests: int
    failures: int
    median_ms: float
    average_ms: float
    max_ms: float
    rps: float
    percentiles_ms: dict[str, float]

    @property
    def p95_ms(self) -> float:
        return self.percentiles_ms.get("95%", float("nan"))

    @property
    def p99_ms(self) -> float:
        return self.percentiles_ms.get("99%", float("nan"))


@dataclass(frozen=True)
class LocustResult:
    returncode: int
    entries: list[Entry]
    failures: list[dict[str, str]]
    memlayer: dict[str, Any]
    output_tail: str
    files: dict[str, Path] = field(default_factory=dict)

    def entry(self, request_type: str, name: str) -> Entry:
        for entry in self.entries:
            if entry.request_type == request_type and entry.name == name:
                return entry
        known = [(e.request_type, e.name) for e in self.entries]
        raise KeyError(f"no stats row {request_type} {name}; rows: {known}")

    @property
    def total(self) -> Entry:
        return self.entry("", "Aggregated")

    @property
    def memory_sources(self) -> dict[str, dict[str, int]]:
        return self.memlayer.get("memory_sources", {})

    def memory_source_share(self, persona: str, source: str) -> float:
        counts = self.memory_sources.get(persona, {})
        total = sum(counts.values())
        return counts.get(source, 0) / total if total else 0.0


def locust_command(
    host: str,
    *,
    users: int,
    spawn_rate: float,
    run_time: str,
    csv_prefix: Path,
    report: Path,
    credentials: Path | None = None,
    processes: int | None = None,
    tags: Sequence[str] = (),
    user_classes: Sequence[str] = (),
    extra_args: Sequence[str] = (),
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        run_time,
        "--stop-timeout",
        "10",
        "--csv",
        str(csv_prefix),
        "--json-file",
        str(csv_prefix),
        "--exit-code-on-error",
        "1",
        "--only-summary",
        "--memlayer-report",
        str(report),
    ]
    if credentials is not None:
        command += ["--memlayer-credentials", str(credentials)]
    if processes:
        command += ["--processes", str(processes)]
    if tags:
        command += ["--tags", *tags]
    # Class names go last; Locust keeps every class otherwise, even one whose tasks the tags
    # filtered out (and then complains that it has no tasks).
    return [*command, *extra_args, *user_classes]


def run_locust(
    host: str,
    *,
    users: int = 50,
    spawn_rate: float = 25,
    run_time: str = "20s",
    workdir: Path | None = None,
    credentials: Path | None = None,
    processes: int | None = None,
    tags: Sequence[str] = (),
    user_classes: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
) -> LocustResult:
    """Run one headless Locust test and parse its CSV stats and memlayer report.

    ``processes=N`` runs a master and N local workers (distributed mode on one machine).
    ``timeout`` defaults to the run time plus a minute for start-up and shut-down.
    Locust runs in ``workdir``, so the repository's ``[tool.locust]`` defaults do not apply.
    """
    workdir = Path(workdir or tempfile.mkdtemp(prefix="memlayer-locust-"))
    workdir.mkdir(parents=True, exist_ok=True)
    prefix, report = workdir / "locust", workdir / "memlayer-report.json"
    command = locust_command(
        host,
        users=users,
        spawn_rate=spawn_rate,
        run_time=run_time,
        csv_prefix=prefix,
        report=report,
        credentials=(credentials or CREDENTIALS).resolve(),
        processes=processes,
        tags=tags,
        user_classes=user_classes,
        extra_args=extra_args,
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LOCUST_SKIP_MONKEY_PATCH", None)  # Locust cannot run without its patching
    completed = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout or time_span_seconds(run_time) + 60,
        check=False,
    )
    (workdir / "locust.log").write_text(completed.stdout + completed.stderr)
    files = {
        "stats": Path(f"{prefix}_stats.csv"),
        "failures": Path(f"{prefix}_failures.csv"),
        "json": Path(f"{prefix}.json"),
        "report": report,
        "log": workdir / "locust.log",
    }
    return LocustResult(
        returncode=completed.returncode,
        entries=parse_stats_csv(files["stats"]),
        failures=_read_csv(files["failures"]),
        memlayer=json.loads(report.read_text()) if report.exists() else {},
        output_tail="\n".join((completed.stdout + completed.stderr).splitlines()[-40:]),
        files=files,
    )


def parse_stats_csv(path: Path) -> list[Entry]:
    """Rows of Locust's ``<prefix>_stats.csv``; [] when the run produced none."""
    entries = []
    for row in _read_csv(path):
        percentiles = {}
        for key, value in row.items():
            if key.endswith("%") and value not in ("", "N/A"):
                percentiles[key] = float(value)
        entries.append(
            Entry(
                request_type=row["Type"],
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                median_ms=_float(row["Median Response Time"]),
                average_ms=_float(row["Average Response Time"]),
                max_ms=_float(row["Max Response Time"]),
                rps=_float(row["Requests/s"]),
                percentiles_ms=percentiles,
            )
        )
    return entries


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")


def time_span_seconds(run_time: str) -> float:
    """Seconds of a Locust time span such as ``20s``, ``1m30s`` or ``2h``."""
    total, number = 0.0, ""
    for char in run_time.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in "hms" and number:
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
        else:
            raise ValueError(f"not a time span: {run_time!r}")
    return total + (float(number) if number else 0.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="http://127.0.0.1:8000")
    parser.add_argument("-u", "--users", type=int, default=50)
    parser.add_argument("-r", "--spawn-rate", type=float, default=25)
    parser.add_argument("-t", "--run-time", default="20s")
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--credentials", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--tags", nargs="*", default=())
    parser.add_argument(
        "--redis-url",
        default=None,
        help="the service's Redis: print Redis commands per chat turn (INFO commandstats)",
    )
    parser.add_argument("user_classes", nargs="*", help="e.g. ReturningUser (default: all)")
    args = parser.parse_args(argv)
    import redis_commands  # beside this file: on the path when run as a command

    before = redis_commands.commandstats(args.redis_url) if args.redis_url else None
    result = run_locust(
        args.host,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time=args.run_time,
        processes=args.processes,
        credentials=args.credentials,
        workdir=args.workdir,
        tags=args.tags,
        user_classes=args.user_classes,
    )
    for entry in result.entries:
        print(
            f"{entry.request_type:<5} {entry.name:<32} {entry.requests:>7} req "
            f"{entry.failures:>5} fail  p50 {entry.median_ms:>6.0f} ms  p99 {entry.p99_ms:>6.0f} ms"
        )
    print(json.dumps(result.memlayer, indent=2))
    if before is not None:
        calls = redis_commands.delta(before, redis_commands.commandstats(args.redis_url))
        turns = sum(
            e.requests - e.failures
            for e in result.entries
            if e.request_type == "WS" and e.name == "turn"
        )
        print("\n".join(redis_commands.per_turn_lines(calls, turns)))
    print(f"locust exit code {result.returncode}; files in {result.files['log'].parent}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
