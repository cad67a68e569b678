"""The generic top-level folders install under one namespace, in a wheel too."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.external  # the wheel's isolated build fetches setuptools from the index
def test_wheel_ships_every_package_under_the_memlayer_namespace(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("memlayer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "memlayer/cli.py",
        "memlayer/memory/service.py",
        "memlayer/cache/context_cache.py",
        "memlayer/api/app.py",
        "memlayer/supervisor/graph.py",
        "memlayer/migrations/env.py",
        "memlayer/migrations/script.py.mako",
        "memlayer/store/store.py",
        "memlayer/store/conformance/suite.py",
        "memlayer/store/conformance/stateful.py",
    ):
        assert required in names, required
    assert any(n.startswith("memlayer/migrations/versions/") and "0003" in n for n in names)
    assert any(n.startswith("memlayer/migrations/versions/") and "0005_store" in n for n in names)
    # The pages and every ES module they import are package data (pyproject package-data).
    static = [p for p in (ROOT / "api/static").rglob("*") if p.is_file()]
    assert any(p.suffix == ".js" for p in static)
    for path in static:
        shipped = "memlayer/api/static/" + path.relative_to(ROOT / "api/static").as_posix()
        assert shipped in names, shipped
    assert not any(n.startswith(("memory/", "cache/", "api/", "tests/")) for n in names), (
        "nothing may install as a bare top-level package"
    )


def test_console_script_lists_its_commands():
    out = subprocess.run(
        [sys.executable, "-m", "memlayer.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("serve", "migrate", "seed", "bench", "cache"):
        assert command in out
