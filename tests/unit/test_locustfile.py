"""The load test's own logic: personas, popularity skew, the ops-summary reader, the WS turn.

The pure modules beside the locustfile are imported here directly. Anything that imports
Locust runs in a subprocess: importing Locust monkey-patches the whole interpreter with
gevent, which the asyncio tests sharing this pytest process must not inherit.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import random
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from memlayer.cache import RequestCounts

ROOT = Path(__file__).resolve().parents[2]
LOADTESTS = ROOT / "loadtests"


def load(name: str) -> ModuleType:
    """Import ``loadtests/<name>.py`` under a private name, as Locust would find it."""
    spec = importlib.util.spec_from_file_location(
        f"_memlayer_load_{name}", LOADTESTS / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


popularity = load("popularity")
service_counters = load("service_counters")
tally = load("tally")
smoke = load("smoke")


def run_with_locust(script: str) -> Any:
    """Run ``script`` in a fresh interpreter with the locustfile loaded; it prints JSON."""
    prelude = textwrap.dedent(
        f"""
        import json, sys
        from locust.util.load_locustfile import load_locustfile
        user_classes, _ = load_locustfile({str(LOADTESTS / "locustfile.py")!r})
        lf = sys.modules["locustfile"]
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- popularity ----------------------------------------------------------------------------


def test_zipf_weights_are_a_distribution_that_decreases_with_rank():
    weights = popularity.zipf_weights(500, 1.1)
    assert sum(weights) == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(weights))


def test_zipf_exponent_zero_is_uniform():
    assert popularity.zipf_weights(4, 0.0) == pytest.approx([0.25] * 4)


@pytest.mark.parametrize(("n", "exponent"), [(0, 1.0), (10, -0.5)])
def test_zipf_rejects_nonsense(n, exponent):
    with pytest.raises(ValueError):
        popularity.zipf_weights(n, exponent)


def test_zipf_picker_sends_most_traffic_to_a_few_hot_users():
    picker = popularity.ZipfPicker(1000, 1.1, random.Random(7))
    draws = [picker.pick() for _ in range(20_000)]
    top_ten_share = sum(1 for rank in draws if rank < 10) / len(draws)
    assert top_ten_share == pytest.approx(sum(popularity.zipf_weights(1000, 1.1)[:10]), abs=0.02)
    assert top_ten_share > 0.4  # vs 1% if uniform
    assert len(set(draws)) > 200  # and the long tail still shows up
    assert min(draws) >= 0 and max(draws) < 1000


def test_larger_exponent_means_more_skew():
    shares = []
    for exponent in (0.0, 0.8, 1.1, 1.5):
        picker = popularity.ZipfPicker(1000, exponent, random.Random(1))
        shares.append(sum(picker.pick() < 10 for _ in range(5000)) / 5000)
    assert shares == sorted(shares)
    assert shares[0] < 0.03 < 0.7 < shares[-1]


def test_zipf_picker_choice_needs_the_list_it_ranks():
    picker = popularity.ZipfPicker(3, 1.0, random.Random(0))
    assert picker.choice(["a", "b", "c"]) in {"a", "b", "c"}
    with pytest.raises(ValueError):
        picker.choice(["a", "b"])


def test_single_user_is_always_picked():
    picker = popularity.ZipfPicker(1, 2.0)
    assert {picker.pick() for _ in range(100)} == {0}


# --- the ops-summary reader ---------------------------------------------------------------

# What GET /api/v1/ops/summary answers (the parts the load test reads).
SUMMARY = {
    "cache_requests": {"hit": 900.0, "miss": 80.0, "error": 20.0, "bypass": 5000.0},
    "hit_ratio": 0.15,
    "db_queries_total": 150.0,
    "fills": {"stored": 80.0},
}


def counters(hits=0.0, misses=0.0, errors=0.0, bypasses=0.0, db_queries=0.0):
    requests = RequestCounts(hits=hits, misses=misses, errors=errors, bypasses=bypasses)
    return service_counters.ServiceCounters(requests, db_queries)


def test_service_counters_read_the_summary_as_the_service_wrote_it():
    written = RequestCounts(hits=1, misses=2, errors=3, bypasses=4)
    read = service_counters.ServiceCounters.from_summary(
        {"cache_requests": written.by_result(), "db_queries_total": 5}
    )
    assert read == counters(1, 2, 3, 4, db_queries=5)


def test_service_counters_count_bypass_as_not_served_by_the_cache():
    read = service_counters.ServiceCounters.from_summary(SUMMARY)
    assert read.requests.hits == 900
    assert read.requests.bypasses == 5000
    assert read.db_queries == 150
    assert read.requests.hit_ratio == pytest.approx(SUMMARY["hit_ratio"])


def test_window_turns_two_readings_into_hit_ratio_and_db_qps():
    before = service_counters.ServiceCounters.from_summary(SUMMARY)
    after = counters(hits=1890, misses=90, errors=20, bypasses=6000, db_queries=250)
    w = service_counters.window(before, after, seconds=5.0)
    assert w.cache_lookups == 2000  # 990 hits, 10 misses, 0 errors, 1000 bypasses
    assert w.hit_ratio == pytest.approx(0.495)
    assert w.db_qps == pytest.approx(20.0)


def test_window_treats_a_restarted_process_like_prometheus_rate():
    before = counters(hits=1000, misses=100, db_queries=500)
    after = counters(hits=30, misses=10, db_queries=12)
    w = service_counters.window(before, after, seconds=4.0)
    assert w.hit_ratio == pytest.approx(0.75)
    assert w.db_qps == pytest.approx(3.0)


def test_window_needs_readings_apart_in_time():
    with pytest.raises(ValueError):
        service_counters.window(counters(), counters(), seconds=0)


def test_no_lookups_means_no_ratio_rather_than_zero():
    empty = service_counters.ServiceCounters.from_summary({})
    assert empty.requests.hit_ratio is None
    assert service_counters.window(empty, empty, 1.0).hit_ratio is None
    assert service_counters.format_ratio(None) == "n/a"
    assert service_counters.format_ratio(0.9123) == "91.2%"


# --- memory sources across workers ---------------------------------------------------------


def test_worker_counts_drain_into_the_master_tally():
    worker_a, worker_b, master = (tally.MemorySourceTally() for _ in range(3))
    worker_a.record("returning", "cache")
    worker_a.record("returning", "database")
    worker_b.record("returning", "cache")
    worker_b.record("anonymous", "none")
    # What report_to_master carries (through msgpack: plain dicts of str -> int).
    master.merge(worker_a.drain())
    master.merge(worker_b.drain())
    master.merge(worker_a.drain())  # an empty report changes nothing
    assert master.snapshot() == {
        "anonymous": {"none": 1},
        "returning": {"cache": 2, "database": 1},
    }
    assert worker_a.snapshot() == {}


# --- the smoke-run helper ------------------------------------------------------------------


def test_smoke_command_runs_headless_with_machine_readable_outputs(tmp_path):
    command = smoke.locust_command(
        "http://127.0.0.1:8000",
        users=50,
        spawn_rate=25,
        run_time="20s",
        csv_prefix=tmp_path / "run",
        report=tmp_path / "report.json",
        processes=2,
        user_classes=["ReturningUser"],
    )
    for flag in ("--headless", "--csv", "--json-file", "--exit-code-on-error", "--processes"):
        assert flag in command
    assert command[command.index("-f") + 1].endswith("loadtests/locustfile.py")
    assert command[-1] == "ReturningUser"


def test_smoke_parses_locust_stats_csv(tmp_path):
    stats = tmp_path / "run_stats.csv"
    stats.write_text(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
        "WS,turn,400,2,11,10.5,9,33,120,33.9,0.1,11,11,11,11,11,13,14,15,33,33,33\n"
        "WS,memory_loaded,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n"
        ",Aggregated,400,2,11,10.5,9,33,120,33.9,0.1,11,11,11,11,11,13,14,15,33,33,33\n"
    )
    entries = smoke.parse_stats_csv(stats)
    result = smoke.LocustResult(0, entries, [], {"memory_sources": {"returning": {"cache": 9}}}, "")
    turn = result.entry("WS", "turn")
    assert (turn.requests, turn.failures, turn.p95_ms, turn.p99_ms) == (400, 2, 13.0, 15.0)
    assert result.entry("WS", "memory_loaded").percentiles_ms == {}
    assert result.total.requests == 400
    assert result.memory_source_share("returning", "cache") == 1.0
    assert result.memory_source_share("anonymous", "none") == 0.0
    with pytest.raises(KeyError):
        result.entry("GET", "/nope")


@pytest.mark.parametrize(
    ("span", "seconds"), [("20s", 20), ("1m30s", 90), ("2h", 7200), ("45", 45)]
)
def test_smoke_reads_locust_time_spans(span, seconds):
    assert smoke.time_span_seconds(span) == seconds


# --- the locustfile as Locust loads it (subprocess) ----------------------------------------


def test_personas_are_weighted_tagged_http_users():
    found = run_with_locust(
        """
        from locust import HttpUser
        out = {}
        for name, cls in user_classes.items():
            out[name] = {
                "http": issubclass(cls, HttpUser),
                "weight": cls.weight,
                "persona": cls.persona,
                "tags": sorted({t for f in cls.tasks for t in getattr(f, "locust_tag_set", ())}),
                "untagged": [f.__name__ for f in cls.tasks if not getattr(f, "locust_tag_set", 0)],
            }
        print(json.dumps(out))
        """
    )
    assert set(found) == {"ReturningUser", "NewUser", "AnonymousUser"}  # the base is abstract
    assert all(info["http"] and not info["untagged"] for info in found.values())
    assert found["ReturningUser"]["weight"] > found["NewUser"]["weight"]
    assert found["ReturningUser"]["weight"] > found["AnonymousUser"]["weight"]
    assert {"returning", "chat", "history"} <= set(found["ReturningUser"]["tags"])
    assert {"new", "chat"} <= set(found["NewUser"]["tags"])
    assert {"anonymous", "chat"} <= set(found["AnonymousUser"]["tags"])
    assert {info["persona"] for info in found.values()} == {"returning", "new", "anonymous"}


def test_custom_options_are_registered_with_defaults():
    options = run_with_locust(
        """
        from locust.argument_parser import get_parser
        ns = get_parser().parse_args(["-f", "x.py", "--memlayer-zipf", "0.7"])
        print(json.dumps({k: v for k, v in vars(ns).items() if k.startswith("memlayer_")}))
        """
    )
    assert options == {
        "memlayer_credentials": "loadtests/credentials.csv",
        "memlayer_zipf": 0.7,
        "memlayer_turns": 3,
        "memlayer_turn_timeout": 30.0,
        "memlayer_scrape_interval": 5.0,
        "memlayer_report": "",
    }


def test_websocket_turns_are_reported_with_memory_source_and_failures():
    """A scripted socket stands in for the server: no network."""
    results = run_with_locust(
        """
        import websocket
        from locust.env import Environment

        class ScriptedSocket:
            def __init__(self, frames):
                self.frames, self.sent = list(frames), []
            def send(self, text):
                self.sent.append(json.loads(text))
            def settimeout(self, seconds):
                pass
            def recv_data(self):
                if not self.frames:
                    raise websocket.WebSocketTimeoutException("timed out")
                frame = self.frames.pop(0)
                if isinstance(frame, int):  # a close frame with this code
                    return websocket.ABNF.OPCODE_CLOSE, frame.to_bytes(2, "big") + b"bye"
                return websocket.ABNF.OPCODE_TEXT, json.dumps(frame).encode()

        env = Environment(user_classes=list(user_classes.values()), events=lf.events)
        fired = []
        env.events.request.add_listener(lambda **kw: fired.append(
            [kw["request_type"], kw["name"], repr(kw["exception"]) if kw["exception"] else None]))

        def turn(cls, frames):
            fired.clear()
            socket = ScriptedSocket(frames)
            ok = cls(env).turn(socket, "hello", timeout=1.0)
            return {"ok": ok.value, "fired": list(fired), "sent": socket.sent}

        loaded = {"type": "memory_loaded", "user_id": 1, "memory_count": 3, "source": "cache"}
        final = {"type": "final_response", "response": "hi", "intent": "chat"}
        out = {
            "success": turn(user_classes["ReturningUser"],
                            [{"type": "planning_start"}, loaded, {"type": "team_start"}, final]),
            "error": turn(user_classes["ReturningUser"],
                          [loaded, {"type": "error", "message": "llm down"}]),
            "closed": turn(user_classes["ReturningUser"], [4004]),
            "timeout": turn(user_classes["NewUser"], [loaded]),
            "anonymous_with_memory": turn(user_classes["AnonymousUser"], [loaded, final]),
            "no_memory_event": turn(user_classes["NewUser"], [final]),
            "save_unknown": turn(user_classes["ReturningUser"], [
                loaded,
                {"type": "memory_unavailable", "stage": "save", "outcome": "unknown"},
                final,
            ]),
            "sources": lf.SOURCES.snapshot(),
            "ws_url": user_classes["NewUser"](env).ws_url("abc"),
        }
        print(json.dumps(out))
        """
    )
    success = results["success"]
    assert success["ok"] == "answered"
    [sent] = success["sent"]
    assert sent["type"] == "query" and sent["query"] == "hello"
    assert str(uuid.UUID(sent["turn_id"])) == sent["turn_id"], "every turn carries a turn id"
    assert success["fired"] == [["WS", "memory_loaded", None], ["WS", "turn", None]]
    assert results["save_unknown"]["ok"] == "save_unknown", "the caller retries it"

    assert results["error"]["ok"] == "failed"
    assert results["error"]["fired"][-1][:2] == ["WS", "turn"]
    assert "llm down" in results["error"]["fired"][-1][2]
    assert "4004" in results["closed"]["fired"][-1][2]
    assert "no final_response within" in results["timeout"]["fired"][-1][2]
    anonymous = results["anonymous_with_memory"]["fired"]
    assert (
        anonymous[0][1] == "memory_loaded" and "anonymous session touched memory" in anonymous[0][2]
    )
    assert "without a memory_loaded" in results["no_memory_event"]["fired"][0][2]

    assert results["sources"] == {
        "anonymous": {"cache": 1},
        "new": {"cache": 1},
        "returning": {"cache": 3},
    }
    assert results["ws_url"] == "ws://127.0.0.1:8000/api/v1/chat/ws/abc"


def test_returning_user_without_credentials_fails_loudly(tmp_path):
    results = run_with_locust(
        f"""
        import argparse
        from locust.env import Environment
        from locust.exception import StopUser

        env = Environment(user_classes=list(user_classes.values()), events=lf.events)
        env.parsed_options = argparse.Namespace(memlayer_credentials={str(tmp_path / "none.csv")!r})
        fired = []
        env.events.request.add_listener(
            lambda **kw: fired.append([kw["name"], str(kw["exception"])]))
        try:
            user_classes["ReturningUser"](env).on_start()
            stopped = False
        except StopUser:
            stopped = True
        print(json.dumps({{"stopped": stopped, "fired": fired}}))
        """
    )
    assert results["stopped"] is True
    assert results["fired"][0][0] == "credentials"
    assert "memlayer seed" in results["fired"][0][1]


def test_credentials_csv_is_read_in_seed_format(tmp_path):
    path = tmp_path / "credentials.csv"
    path.write_text(
        "email,password,user_id\na@example.com,pw-a,1\n,missing,2\nb@example.com,pw-b,3\n"
    )
    results = run_with_locust(
        f"""
        rows = lf.load_credentials({str(path)!r})
        print(json.dumps([[r.email, r.password] for r in rows]))
        """
    )
    assert results == [["a@example.com", "pw-a"], ["b@example.com", "pw-b"]]


def test_web_ui_has_a_memlayer_tab_with_the_watchers_rows():
    """Locust's own Flask app, driven by its test client: no server, no network."""
    results = run_with_locust(
        """
        from locust.argument_parser import get_parser
        from locust.env import Environment

        env = Environment(user_classes=list(user_classes.values()), events=lf.events)
        env.parsed_options = get_parser().parse_args(
            ["-f", "locustfile.py", "--memlayer-scrape-interval", "0"])
        env.create_local_runner()
        env.create_web_ui("127.0.0.1", 0, delayed_start=True)
        env.events.init.fire(environment=env, runner=env.runner, web_ui=env.web_ui)
        lf.SOURCES.record("returning", "cache")
        lf.SOURCES.record("returning", "database")
        client = env.web_ui.app.test_client()
        print(json.dumps({
            "tabs": env.web_ui.template_args["extended_tabs"],
            "stats": client.get("/stats/requests").get_json()["extended_stats"],
            "summary": client.get("/memlayer").get_json(),
        }))
        """
    )
    assert results["tabs"] == [{"title": "memlayer", "key": "memlayer"}]
    [table] = results["stats"]
    assert table["key"] == "memlayer"
    rows = {row["metric"]: row["value"] for row in table["data"]}
    assert rows["cache hit ratio (since start)"] == "n/a"  # nothing read yet
    assert rows["memory source: returning"] == "cache 1 (50%), database 1 (50%)"
    summary = results["summary"]
    assert summary["summary_url"] == "http://127.0.0.1:8000/api/v1/ops/summary"
    assert summary["hit_ratio_since_start"] is None
    assert summary["memory_sources"] == {"returning": {"cache": 1, "database": 1}}


# --- Redis commands per turn (scripts/loadtest.sh) -----------------------------------------

redis_commands = load("redis_commands")


def test_redis_commands_between_two_readings_per_chat_turn():
    before = {"get": 1000, "evalsha": 10, "ping": 5}
    after = {"get": 1400, "evalsha": 210, "ping": 5, "set": 20}

    calls = redis_commands.delta(before, after)
    lines = redis_commands.per_turn_lines(calls, turns=100)

    assert calls == {"get": 400, "evalsha": 200, "set": 20}  # ping did not move
    assert lines[0].startswith("redis commands per turn: 6.20")
    assert lines[1].split()[:2] == ["get", "4.00"]  # the busiest first
    assert redis_commands.per_turn_lines(calls, turns=0)[0].startswith("redis commands: 620")
