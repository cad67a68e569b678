"""`memlayer chaos` end to end, small: it runs, injects a partition and a kill, checks every
read, reports, and exits 0 only when no read was stale beyond the bound.

The long run is the command itself (a minute by default, docs/runbook.md); this is its
smoke. It runs the real command as a subprocess, on the test Postgres server (the run
makes and drops a database of its own there) and a redis-server the run starts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.redis_server import require_redis_binaries
from tests.support.services import base_database_url

SMOKE = [
    *("--processes", "2", "--users", "6", "--writers", "3", "--readers", "3"),
    *("--duration", "7", "--fault-every", "2", "--faults", "partition,kill"),
    *("--partition-seconds", "1", "--progress-every", "2", "--seed", "12"),
]


def row(output: str, name: str) -> str:
    match = re.search(rf"^  {re.escape(name)}\s+(.*)$", output, re.M)
    assert match, f"no {name!r} row in:\n{output}"
    return match.group(1)


@pytest.mark.slow
def test_the_chaos_smoke_reports_and_finds_no_stale_read(tmp_path) -> None:
    require_redis_binaries()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MEMLAYER_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["MEMLAYER_DATABASE_URL"] = base_database_url()
    env["TMPDIR"] = str(tmp_path)  # where a failed run keeps its logs
    done = subprocess.run(
        [sys.executable, "-m", "memlayer.cli", "chaos", *SMOKE],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = done.stdout
    assert done.returncode in (0, 1), f"setup failed:\n{output}\n{done.stderr}"

    # Progress while running, the fault log, then the summary table.
    assert re.search(r"^\s+\d+\.\ds\s+writes [\d,]+ acked", output, re.M), output
    assert re.search(r"fault partition p\d .*Redis refused", output), output
    assert re.search(r"fault kill p\d .*SIGKILL pid \d+ .*replaced by pid \d+", output), output
    assert int(row(output, "writes acknowledged").split()[0].replace(",", "")) > 0
    assert int(row(output, "reads checked").split()[0].replace(",", "")) > 0
    assert row(output, "faults injected").startswith("2   kill 1 · partition 1")
    assert row(output, "consistency checks")  # figures, or "n/a ... not exported"

    stale = int(row(output, "stale reads > bound").split()[0].replace(",", ""))
    assert stale == 0, output
    assert done.returncode == 0
