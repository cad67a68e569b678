"""What a chaos run prints: a progress line, the fault log, the summary table.

The consistency checker's figures come from each serve process's ``/metrics`` (scraped
while it lives; a process killed later counts as last scraped). Families are looked up
by name and may be absent (an older server): the summary then says "not exported".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from memlayer.chaos.faults import FaultRecord
from memlayer.chaos.workload import Tally

CHECKS = "memlayer_cache_consistency_checks_total"
STALENESS = "memlayer_cache_consistency_staleness_seconds"
# Context for the figures, when the servers export them (tolerant of absence): label,
# metric, and the label values that count.
EXTRAS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("write-throughs failed", "memlayer_cache_write_through_total", {"outcome": "error"}),
    ("write-throughs deferred", "memlayer_cache_write_through_total", {"outcome": "deferred"}),
    ("outbox rows drained", "memlayer_cache_outbox_drained_total", {}),
    ("cache turnovers", "memlayer_cache_turnovers_total", {}),
    ("near-cache hits", "memlayer_cache_requests_total", {"result": "near"}),
    ("redis hits", "memlayer_cache_requests_total", {"result": "hit"}),
    ("near-cache drops", "memlayer_near_cache_drops_total", {}),
    ("near evicted by Redis", "memlayer_near_cache_evictions_total", {"reason": "invalidated"}),
    ("near re-checks", "memlayer_near_cache_rechecks_total", {}),
    ("near re-checks stale", "memlayer_near_cache_rechecks_total", {"result": "mismatch"}),
    ("near re-checks missing", "memlayer_near_cache_rechecks_total", {"result": "missing"}),
)
RULE = "─" * 66


@dataclass(slots=True)
class Scrape:
    """The figures of one process's ``/metrics`` this run reports."""

    checks: dict[str, float] = field(default_factory=dict)
    staleness_buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative
    staleness_count: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)
    has_checker: bool = False

    @classmethod
    def parse(cls, text: str) -> Scrape:
        scrape = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == CHECKS and sample.labels.get("tier") == "near":
                    pass  # the near tier's re-checks: reported apart (EXTRAS)
                elif sample.name == CHECKS:
                    scrape.has_checker = True
                    _add(scrape.checks, sample.labels.get("result", "?"), sample.value)
                elif sample.name == f"{STALENESS}_bucket":
                    le = float(sample.labels["le"])
                    scrape.staleness_buckets[le] = (
                        scrape.staleness_buckets.get(le, 0.0) + sample.value
                    )
                elif sample.name == f"{STALENESS}_count":
                    scrape.staleness_count += sample.value
                else:
                    for label, name, labels in EXTRAS:
                        if sample.name == name and all(
                            sample.labels.get(k) == v for k, v in labels.items()
                        ):
                            _add(scrape.extras, label, sample.value)
        return scrape


def _add(counts: dict[str, float], key: str, value: float) -> None:
    counts[key] = counts.get(key, 0.0) + value


def combine(scrapes: Iterable[Scrape]) -> Scrape:
    total = Scrape()
    for s in scrapes:
        total.has_checker = total.has_checker or s.has_checker
        for result, n in s.checks.items():
            _add(total.checks, result, n)
        for name, n in s.extras.items():
            _add(total.extras, name, n)
        total.staleness_count += s.staleness_count
        for le, count in s.staleness_buckets.items():
            total.staleness_buckets[le] = total.staleness_buckets.get(le, 0.0) + count
    return total


def worst_bucket(scrape: Scrape) -> float | None:
    """The smallest bucket bound holding every observation (None if there are none)."""
    if scrape.staleness_count == 0:
        return None
    for le, count in sorted(scrape.staleness_buckets.items()):
        if count >= scrape.staleness_count:
            return le
    return math.inf


def progress_line(elapsed: float, tally: Tally, live: Iterable[str]) -> str:
    acked = sum(n for k, n in tally.writes.items() if k.endswith(" ok"))
    failed = sum(n for k, n in tally.writes.items() if not k.endswith(" ok"))
    return (
        f"  {elapsed:5.1f}s  writes {acked:,} acked / {failed:,} not · "
        f"reads {tally.reads['checked']:,} checked ({tally.reads_behind:,} behind, "
        f"{len(tally.stale):,} stale > {tally.bound:g}s) · worst {tally.worst:.2f}s · "
        f"up {' '.join(live) or '-'}"
    )


def fault_line(record: FaultRecord) -> str:
    ended = record.started + record.seconds
    return (
        f"  {ended:5.1f}s  fault {record.kind} {record.target} "
        f"({record.started:.1f}-{ended:.1f}s): {record.detail}"
    )


def _by_kind(counts: Mapping[str, float]) -> str:
    return " · ".join(f"{name} {n:,.0f}" for name, n in sorted(counts.items()) if n) or "-"


def _after_fault(tally: Tally, faults: list[FaultRecord]) -> Counter[str]:
    """Stale reads by the last fault that had started before each read ("none" before any)."""
    counts: Counter[str] = Counter()
    for read in tally.stale:
        before = [f for f in faults if f.started <= read.at]
        counts[str(before[-1].kind) if before else "none"] += 1
    return counts


def summary(
    *,
    processes: int,
    users: int,
    seconds: float,
    tally: Tally,
    faults: list[FaultRecord],
    scrape: Scrape,
    scraped: int,
) -> list[str]:
    acked = {k[:-3]: n for k, n in tally.writes.items() if k.endswith(" ok")}
    failed = {k: n for k, n in tally.writes.items() if not k.endswith(" ok")}
    stale = len(tally.stale)
    asked = [r.committed >= r.expected for r in tally.stale if r.committed is not None]
    evidence = f"; Postgres holds the missed version: {sum(asked)} of {len(asked)} asked"
    rows = [
        ("writes acknowledged", f"{sum(acked.values()):,}", _by_kind(acked)),
        ("writes not acknowledged", f"{sum(failed.values()):,}", _by_kind(failed)),
        ("reads checked", f"{tally.reads['checked']:,}", f"failed {tally.reads['failed']:,}"),
        ("reads behind (in bound)", f"{tally.reads_behind:,}", "missed a write < bound old"),
        (
            "stale reads > bound",
            f"{stale:,}",
            "target 0" + ("" if stale == 0 else f"  FAILED{evidence}"),
        ),
        ("worst staleness", f"{tally.worst:.2f} s", f"bound {tally.bound:g} s"),
        ("stale reads after fault", f"{stale:,}", _by_kind(_after_fault(tally, faults))),
        ("faults injected", f"{len(faults):,}", _by_kind(Counter(str(f.kind) for f in faults))),
    ]
    if scrape.has_checker:
        worst = worst_bucket(scrape)
        rows.append(
            ("consistency checks", f"{sum(scrape.checks.values()):,.0f}", _by_kind(scrape.checks))
        )
        rows.append(
            (
                "checker staleness seen",
                f"{scrape.staleness_count:,.0f}",
                "-" if worst is None else f"all ≤ {worst:g} s",
            )
        )
    else:
        rows.append(("consistency checks", "n/a", f"not exported by the servers ({CHECKS})"))
    for label, _name, _labels in EXTRAS:
        if label in scrape.extras:
            rows.append((label, f"{scrape.extras[label]:,.0f}", ""))
    lines = [
        f"  memlayer chaos: {processes} processes, {users} users, {seconds:.1f} s",
        f"  {RULE}",
        *(f"  {name:<25}{value:>10}   {note}".rstrip() for name, value, note in rows),
        f"  (server figures: last /metrics of each of {scraped} server processes)",
    ]
    if tally.stale:
        lines.append(
            "  stale reads (first 10):    at    user  process  version  expected  staleness"
            "  postgres"
        )
        for read in tally.stale[:10]:
            committed = "-" if read.committed is None else str(read.committed)
            lines.append(
                f"  {read.at:>29.1f}s  {read.user_id:>6}  {read.slot:>7}  {read.version:>7}  "
                f"{read.expected:>8}  {read.staleness:8.2f} s  {committed:>8}"
            )
    return lines
