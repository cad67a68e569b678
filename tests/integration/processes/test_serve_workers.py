"""`memlayer serve --workers N`: every worker's numbers in /metrics and the ops summary.

Real processes on real Postgres and Redis: the serve command, its uvicorn workers, and the
Prometheus multiprocess directory it prepares (under TMPDIR, so the test can watch it).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from memlayer.cache import RequestCounts
from memlayer.chaos.server import ServerProcess, settings_env
from memlayer.settings import Settings

CONTEXT = "/api/v1/memory/context"
MAX_LOADS = 200  # fresh connections until both workers have served; far more than needed


def lookups_by_worker(metrics_dir: Path) -> dict[int, float]:
    """Cache lookups per worker pid, read from each worker's own counter file."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(re.fullmatch(r"counter_(\d+)\.db", path.name).group(1))
        families = MultiProcessCollector.merge([str(path)])
        counts[pid] = sum(
            s.value
            for f in families
            for s in f.samples
            if s.name == "memlayer_cache_requests_total"
        )
    return counts


def made_by_serve(tmpdir: Path) -> list[Path]:
    return list(tmpdir.glob("memlayer-metrics-*"))


def live_workers(metrics_dir: Path) -> set[int]:
    return {int(p.name.split("_")[-1][:-3]) for p in metrics_dir.glob("gauge_livesum_*.db")}


def exported(text: str) -> dict[str, list]:
    """The /metrics page's samples by name."""
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def total(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


async def register(http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.post(
        "/api/v1/auth/register",
        json={"email": f"workers-{uuid.uuid4().hex[:10]}@example.com", "password": "password-12"},
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_two_workers_are_one_service_in_metrics_and_summary(
    settings: Settings, tmp_path: Path
) -> None:
    own = settings.model_copy(update={"cache_key_prefix": f"ml-workers-{uuid.uuid4().hex[:8]}"})
    server = ServerProcess(
        {**settings_env(own), "TMPDIR": str(tmp_path)}, workers=2, log_path=tmp_path / "log"
    )
    await server.start()
    try:
        (metrics_dir,) = made_by_serve(tmp_path)  # serve's own directory, under TMPDIR
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            headers = await register(http)

        # Each load on a fresh connection: whichever worker accepts it serves it.
        loads = 0
        while len([n for n in lookups_by_worker(metrics_dir).values() if n > 0]) < 2:
            assert loads < MAX_LOADS, f"one worker served all {loads} loads"
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                assert (await http.get(CONTEXT, headers=headers)).status_code == 200
            loads += 1
        assert sum(lookups_by_worker(metrics_dir).values()) == loads

        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            page = exported((await http.get("/metrics")).text)
            summary = (await http.get("/api/v1/ops/summary")).json()

        assert total(page, "memlayer_cache_requests_total") == loads
        assert total(page, "http_requests_total", handler=CONTEXT) == loads  # instrumentator's
        assert total(page, "memlayer_api_workers") == 2
        assert total(page, "memlayer_cache_breaker_open") == 0
        assert total(page, "process_cpu_seconds_total") > 0  # summed over the live workers
        per_pid = [s.name for samples in page.values() for s in samples if "pid" in s.labels]
        assert not per_pid, f"gauges without a multiprocess mode: {sorted(set(per_pid))}"

        served = RequestCounts(**{k: summary["cache_requests"][r] for k, r in _RESULTS})
        assert served.lookups == loads
        assert summary["hit_ratio"] == served.hit_ratio == (loads - 1) / loads  # one cold miss
        assert summary["workers"] == 2
        assert summary["workers_breaker_open"] == 0 and summary["breaker_open"] is False

        # A worker killed outright: uvicorn replaces it, its counts stay, its gauges go.
        victim = min(live_workers(metrics_dir))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:  # polling the server's own recovery, with a deadline
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                summary = (await http.get("/api/v1/ops/summary")).json()
            workers = live_workers(metrics_dir)
            if summary["workers"] == 2 and victim not in workers and len(workers) == 2:
                break
            assert time.monotonic() < deadline, f"no replacement worker: {summary}"
            await asyncio.sleep(0.1)
        assert sum(summary["cache_requests"].values()) == loads
    finally:
        exit_code = await server.stop()
        server.close_log()
    assert exit_code == 0
    assert not metrics_dir.exists(), "serve removes the multiprocess directory it made"
    assert made_by_serve(tmp_path) == []


_RESULTS = (
    ("near", "near"),  # each worker's near-cache: a lookup like the others
    ("hits", "hit"),
    ("misses", "miss"),
    ("errors", "error"),
    ("bypasses", "bypass"),
)


async def test_a_multiprocess_directory_the_user_set_is_emptied_at_start_and_kept(
    settings: Settings, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from an earlier run")
    own = settings.model_copy(update={"cache_key_prefix": f"ml-workers-{uuid.uuid4().hex[:8]}"})
    env = {**settings_env(own), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    server = await ServerProcess(env, workers=1, log_path=tmp_path / "log").start()
    try:
        assert not (metrics_dir / "counter_999999.db").exists()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            headers = await register(http)
            assert (await http.get(CONTEXT, headers=headers)).status_code == 200
            page = exported((await http.get("/metrics")).text)
            summary = (await http.get("/api/v1/ops/summary")).json()
        assert total(page, "memlayer_cache_requests_total") == 1
        assert summary["workers"] == 1 and sum(summary["cache_requests"].values()) == 1
        assert list(metrics_dir.glob("counter_*.db")), "the worker writes its metrics there"
    finally:
        # One worker is uvicorn itself, which re-raises SIGTERM after a clean shutdown.
        assert await server.stop() in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.log_tail()
        server.close_log()
    assert metrics_dir.is_dir(), "a directory the user set is theirs: serve keeps it"
