"""What the chaos run prints: the server figures it scrapes and the summary table."""

from __future__ import annotations

from memlayer.chaos.faults import FaultKind, FaultRecord
from memlayer.chaos.report import Scrape, combine, progress_line, summary, worst_bucket
from memlayer.chaos.workload import StaleRead, Tally

METRICS = """\
# TYPE memlayer_cache_consistency_checks_total counter
memlayer_cache_consistency_checks_total{result="consistent"} 40.0
memlayer_cache_consistency_checks_total{result="stale"} 1.0
memlayer_cache_consistency_checks_total{result="missing"} 3.0
# TYPE memlayer_cache_consistency_staleness_seconds histogram
memlayer_cache_consistency_staleness_seconds_bucket{le="0.5"} 1.0
memlayer_cache_consistency_staleness_seconds_bucket{le="1.0"} 1.0
memlayer_cache_consistency_staleness_seconds_bucket{le="5.0"} 2.0
memlayer_cache_consistency_staleness_seconds_bucket{le="+Inf"} 2.0
memlayer_cache_consistency_staleness_seconds_count 2.0
memlayer_cache_consistency_staleness_seconds_sum 3.1
# TYPE memlayer_cache_write_through_total counter
memlayer_cache_write_through_total{outcome="stored"} 90.0
memlayer_cache_write_through_total{outcome="error"} 4.0
"""


def test_checker_figures_are_added_up_over_processes() -> None:
    total = combine([Scrape.parse(METRICS), Scrape.parse(METRICS)])
    assert total.has_checker
    assert total.checks == {"consistent": 80.0, "stale": 2.0, "missing": 6.0}
    assert total.staleness_count == 4.0 and worst_bucket(total) == 5.0
    assert total.extras == {"write-throughs failed": 8.0}


def test_servers_without_the_checker_are_reported_as_such() -> None:
    scrape = Scrape.parse("# TYPE up gauge\nup 1.0\n")
    assert not scrape.has_checker and worst_bucket(scrape) is None
    lines = summary(
        processes=2,
        users=3,
        seconds=5.0,
        tally=Tally(bound=2.0),
        faults=[],
        scrape=scrape,
        scraped=2,
    )
    assert any("not exported by the servers" in line for line in lines)


def test_the_summary_names_every_figure_and_lists_stale_reads() -> None:
    tally = Tally(bound=2.0)
    tally.writes.update({"turn ok": 10, "forget ok": 2, "turn failed (503)": 1})
    tally.reads.update({"checked": 50, "failed": 1})
    tally.reads_behind = 4
    tally.worst = 2.5
    tally.stale.append(StaleRead(12.0, 7, "p1", 3, 5, 2.5, committed=6))
    faults = [FaultRecord(FaultKind.KILL, "p1", 3.0, 1.2, "SIGKILL")]
    text = "\n".join(
        summary(
            processes=3,
            users=9,
            seconds=20.0,
            tally=tally,
            faults=faults,
            scrape=Scrape.parse(METRICS),
            scraped=4,
        )
    )
    for row in (
        "writes acknowledged              12   forget 2 · turn 10",
        "writes not acknowledged           1   turn failed (503) 1",
        "reads checked                    50   failed 1",
        "stale reads > bound               1   target 0  FAILED; Postgres holds the missed "
        "version: 1 of 1 asked",
        "worst staleness              2.50 s   bound 2 s",
        "stale reads after fault           1   kill 1",
        "faults injected                   1   kill 1",
        "consistency checks               44   consistent 40 · missing 3 · stale 1",
        "checker staleness seen            2   all ≤ 5 s",
    ):
        assert row in text, row
    assert "p1        3         5      2.50 s         6" in text
    assert "stale" in progress_line(1.0, tally, ["p0", "p1"])
