"""The multiprocess metrics directory `memlayer serve` prepares, and the dead-worker sweep."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from memlayer import multiproc


@pytest.fixture(autouse=True)
def no_directory_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(multiproc.ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def test_one_worker_and_no_directory_keeps_metrics_in_memory() -> None:
    with multiproc.prepared_dir(1) as path:
        assert path is None and multiproc.metrics_dir() is None


def test_several_workers_get_a_fresh_directory_removed_at_the_end(tmp_path: Path) -> None:
    with multiproc.prepared_dir(3) as path:
        assert path is not None and path.parent == tmp_path and path.is_dir()
        assert list(path.iterdir()) == []
        assert os.environ[multiproc.ENV] == str(path)  # what the workers inherit
    assert not path.exists()
    assert multiproc.ENV not in os.environ


def test_a_directory_the_user_set_is_emptied_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    given = tmp_path / "mine"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"old")
    (given / "notes.txt").write_text("not a metrics file")
    monkeypatch.setenv(multiproc.ENV, str(given))
    with multiproc.prepared_dir(4) as path:
        assert path == given
        assert [p.name for p in given.iterdir()] == ["notes.txt"]
    assert given.is_dir() and os.environ[multiproc.ENV] == str(given)


def test_live_gauges_of_a_worker_that_died_are_swept(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid no longer exists
    for pid in (dead.pid, os.getpid()):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")

    assert multiproc.live_worker_pids(tmp_path) == {os.getpid()}
    assert not (tmp_path / f"gauge_livesum_{dead.pid}.db").exists()
    assert (tmp_path / f"counter_{dead.pid}.db").exists(), "a dead worker's counts still count"
