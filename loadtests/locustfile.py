"""Load test of memlayer: three personas chatting over HTTP and WebSocket.

- ``ReturningUser`` logs in as a seeded user (``memlayer seed ... --out credentials.csv``),
  chosen with a Zipf-like skew so a hot set of users comes back often; this is the traffic
  the Redis cache exists for, and its ``memory_loaded`` events should say ``source=cache``.
- ``NewUser`` registers a fresh account and has its first chat (cold path, empty context).
- ``AnonymousUser`` chats without a token; it must never touch either memory tier.

A signed-in persona's socket authenticates with its ``Authorization: Bearer`` header (the
server also takes a first ``auth`` frame, which is what browsers send). The server under test
must have its per-address abuse limits raised (``MEMLAYER_RATE_LIMIT_REGISTER``,
``MEMLAYER_RATE_LIMIT_ANONYMOUS_START``): every Locust user shares one address.

WebSocket turns are reported to Locust as request type ``WS`` (``connect``, ``turn``,
``memory_loaded``) so they get percentiles and failures like HTTP requests. While the test
runs, the master (or the single local process) scrapes the service's ``/metrics`` and shows
the cache hit ratio and Postgres queries/s in the log, in a "memlayer" tab of the web UI
(and as JSON at ``/memlayer``), and in a summary when Locust quits.

Run ``python loadtests/locustfile.py`` to drive one ReturningUser in a debugger.
"""

from __future__ import annotations

# Locust first: importing it gevent-patches the standard library (ssl, socket), which
# requests and websocket-client must see patched. Matters for `python locustfile.py`.
import locust  # noqa: F401

# isort: split

import csv
import json
import logging
import os
import random
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import gevent
import requests
import websocket
from flask import Response, jsonify, request
from locust import HttpUser, between, events, run_single_user, tag, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner
from popularity import ZipfPicker
from promscrape import ServiceCounters, Window, format_ratio, window
from tally import MemorySourceTally

log = logging.getLogger("memlayer.load")

API = "/api/v1"
REPORT_KEY = "memlayer_memory_sources"

# Real-estate questions like the assistant's users ask (irrelevant ones skip memory by
# design, so they would not exercise the cache).
QUERIES = (
    "강남구 아파트 시세 알려줘",
    "서초구 전세 대출 한도가 궁금해요",
    "송파구 오피스텔 월세 계약할 때 주의할 점은?",
    "마포구 아파트 매매 취득세 얼마나 나와요?",
    "용산구 빌라 깡통전세 위험 있나요?",
    "지난번에 물어본 지역 시세 다시 알려줘",
    "10억 이하 아파트 추천해줘",
    "What is the apartment price trend in Gangnam?",
)


# --- options ---------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_: Any) -> None:
    # On the parser itself: its argument groups lack Locust's web-UI keywords.
    parser.add_argument(
        "--memlayer-credentials",
        default="loadtests/credentials.csv",
        env_var="MEMLAYER_LOCUST_CREDENTIALS",
        help="CSV of seeded users (email,password,user_id) for ReturningUser.",
    )
    parser.add_argument(
        "--memlayer-zipf",
        type=float,
        default=1.1,
        env_var="MEMLAYER_LOCUST_ZIPF",
        help="Popularity skew of returning users: 0 is uniform, ~1 is web-like.",
    )
    parser.add_argument(
        "--memlayer-turns",
        type=int,
        default=3,
        env_var="MEMLAYER_LOCUST_TURNS",
        help="Chat turns per returning-user session.",
    )
    parser.add_argument(
        "--memlayer-turn-timeout",
        type=float,
        default=30.0,
        env_var="MEMLAYER_LOCUST_TURN_TIMEOUT",
        help="Seconds a WebSocket turn may take before it counts as failed.",
    )
    parser.add_argument(
        "--memlayer-scrape-interval",
        type=float,
        default=5.0,
        env_var="MEMLAYER_LOCUST_SCRAPE_INTERVAL",
        help="Seconds between scrapes of the service's /metrics (0 turns scraping off).",
    )
    parser.add_argument(
        "--memlayer-report",
        default="",
        env_var="MEMLAYER_LOCUST_REPORT",
        include_in_web_ui=False,
        help="Write a JSON summary (memory sources per persona, hit ratio, db q/s) on quit.",
    )


def _option(environment: Environment, name: str, default: Any) -> Any:
    """An option's value; run_single_user and bare Environments may not have parsed any."""
    options = environment.parsed_options
    value = getattr(options, name, None) if options is not None else None
    return default if value is None else value


# --- the personas ----------------------------------------------------------------------

SOURCES = MemorySourceTally()


class ChatFailed(Exception):
    """A WebSocket turn that did not end in ``final_response``."""


class SocketClosed(ChatFailed):
    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        super().__init__(f"socket closed by server (code {code}) {reason}".strip())


@dataclass
class TurnResult:
    events: list[dict[str, Any]]
    received_bytes: int


class ChatUser(HttpUser):
    """Shared moves of every persona: start a session, chat over the WebSocket."""

    abstract = True
    host = "http://127.0.0.1:8000"
    persona: ClassVar[str] = "chat"

    # --- HTTP ----------------------------------------------------------------------

    def auth(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def start_session(self, token: str | None) -> str | None:
        with self.client.post(
            f"{API}/chat/start",
            json={"metadata": {"persona": self.persona, "client": "locust"}},
            headers=self.auth(token),
            name=f"{API}/chat/start",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"expected 201, got {response.status_code}")
                return None
            session_id = _json(response).get("session_id")
            if not session_id:
                response.failure("no session_id in the answer")
                return None
            return str(session_id)

    def get_json(self, path: str, token: str | None, name: str) -> dict[str, Any] | None:
        with self.client.get(
            path, headers=self.auth(token), name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"expected 200, got {response.status_code}")
                return None
            return _json(response)

    # --- WebSocket -----------------------------------------------------------------

    def ws_url(self, session_id: str) -> str:
        parts = urlsplit(self.host or "")
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path.rstrip('/')}{API}/chat/ws/{session_id}"
        return urlunsplit((scheme, parts.netloc, path, "", ""))

    def chat(self, session_id: str, token: str | None, turns: int) -> int:
        """Hold one WebSocket conversation; returns the number of turns that succeeded."""
        timeout = float(_option(self.environment, "memlayer_turn_timeout", 30.0))
        done = 0
        with self._socket(session_id, token, timeout) as ws:
            if ws is None:
                return 0
            for n in range(turns):
                if n:
                    self.wait()  # a person reads the answer and types the next question
                if not self.turn(ws, random.choice(QUERIES), timeout):
                    break  # a broken conversation does not go on
                done += 1
        return done

    @contextmanager
    def _socket(
        self, session_id: str, token: str | None, timeout: float
    ) -> Iterator[websocket.WebSocket | None]:
        started = time.perf_counter()
        ws: websocket.WebSocket | None = None
        try:
            ws = websocket.create_connection(
                self.ws_url(session_id),
                timeout=timeout,
                header=[f"{k}: {v}" for k, v in self.auth(token).items()],
                enable_multithread=False,
            )
            hello, _ = _receive(ws)
            if hello.get("type") != "connected":
                raise ChatFailed(f"expected a 'connected' event first, got {hello.get('type')!r}")
        except (ChatFailed, websocket.WebSocketException, OSError) as exc:
            self._fire("connect", started, 0, exc)
            if ws is not None:
                ws.close()
            yield None
            return
        self._fire("connect", started, 0, None)
        try:
            yield ws
        finally:
            ws.close()

    def turn(self, ws: websocket.WebSocket, query: str, timeout: float) -> bool:
        """Send one query and read events up to ``final_response``; report it to Locust."""
        started = time.perf_counter()
        deadline = started + timeout
        received = 0
        memory_seen = False
        try:
            ws.send(json.dumps({"type": "query", "query": query}))
            while True:
                ws.settimeout(max(deadline - time.perf_counter(), 0.001))
                event, size = _receive(ws)
                received += size
                kind = event.get("type")
                if kind == "memory_loaded":
                    memory_seen = True
                    self._memory_loaded(event, started)
                elif kind == "error":
                    raise ChatFailed(f"error event: {event.get('message', '')}"[:200])
                elif kind == "final_response":
                    if not memory_seen:
                        self._fire(
                            "memory_loaded",
                            started,
                            0,
                            ChatFailed("final_response came without a memory_loaded event"),
                        )
                    break
        except (ChatFailed, websocket.WebSocketException, OSError) as exc:
            if isinstance(exc, websocket.WebSocketTimeoutException):
                exc = ChatFailed(f"no final_response within {timeout:g} s")
            self._fire("turn", started, received, exc)
            return False
        self._fire("turn", started, received, None)
        return True

    def _memory_loaded(self, event: dict[str, Any], started: float) -> None:
        source = str(event.get("source", "unknown"))
        SOURCES.record(self.persona, source)
        problem = self.memory_problem(event)
        self._fire("memory_loaded", started, 0, ChatFailed(problem) if problem else None)

    def memory_problem(self, event: dict[str, Any]) -> str | None:
        """A persona's invariant that this ``memory_loaded`` event breaks, if any."""
        if event.get("source") not in {"cache", "database", "none"}:
            return f"unknown memory source {event.get('source')!r}"
        return None

    def _fire(self, name: str, started: float, length: int, exc: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exc,
            context={"persona": self.persona},
        )


class ReturningUser(ChatUser):
    """A seeded user coming back: most of the traffic, and what the cache is for."""

    weight = 8
    # Think time: between conversations, and between the turns of one (a person reads
    # the answer and types the next question).
    wait_time = between(2, 6)
    persona = "returning"

    # Logged-in tokens per process (a popular user is often "online" in several tabs), with
    # the time of login: renewed well before the service's default one-hour expiry.
    _tokens: ClassVar[dict[str, tuple[str, float]]] = {}
    token_max_age: ClassVar[float] = 30 * 60

    def on_start(self) -> None:
        path = str(_option(self.environment, "memlayer_credentials", "loadtests/credentials.csv"))
        self.identities = load_credentials(path)
        if not self.identities:
            self.environment.events.request.fire(
                request_type="SETUP",
                name="credentials",
                response_time=0,
                response_length=0,
                exception=ChatFailed(
                    f"no seeded users in {path}: run `memlayer seed --users N --memories M "
                    f"--out {path}` first"
                ),
            )
            raise StopUser()
        exponent = float(_option(self.environment, "memlayer_zipf", 1.1))
        self.picker = ZipfPicker(len(self.identities), exponent)

    def token(self, identity: Identity) -> str | None:
        cached = self._tokens.get(identity.email)
        if cached and time.monotonic() - cached[1] < self.token_max_age:
            return cached[0]
        with self.client.post(
            f"{API}/auth/login",
            json={"email": identity.email, "password": identity.password},
            name=f"{API}/auth/login",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"login failed with {response.status_code}")
                return None
            token = _json(response).get("access_token")
        if token:
            self._tokens[identity.email] = (token, time.monotonic())
        return token

    @tag("returning", "chat")
    @task(4)
    def chat_again(self) -> None:
        identity = self.picker.choice(self.identities)
        token = self.token(identity)
        if token is None:
            return
        session_id = self.start_session(token)
        if session_id is None:
            self._tokens.pop(identity.email, None)  # maybe an expired token: log in again
            return
        self.chat(session_id, token, int(_option(self.environment, "memlayer_turns", 3)))
        self.browse(token)

    @tag("returning", "history")
    @task(1)
    def look_back(self) -> None:
        identity = self.picker.choice(self.identities)
        token = self.token(identity)
        if token is not None:
            self.browse(token)

    def browse(self, token: str) -> None:
        self.get_json(f"{API}/chat/conversations?limit=10", token, name=f"{API}/chat/conversations")
        self.get_json(f"{API}/memory/context?limit=5", token, name=f"{API}/memory/context")


class NewUser(ChatUser):
    """Signs up and has a first chat: the cold path, with an empty memory context."""

    weight = 1
    wait_time = between(3, 8)
    persona = "new"

    @tag("new", "chat")
    @task
    def sign_up_and_chat(self) -> None:
        email = f"load-{uuid.uuid4().hex[:20]}@example.com"
        with self.client.post(
            f"{API}/auth/register",
            json={"email": email, "password": secrets.token_urlsafe(16)},
            name=f"{API}/auth/register",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"expected 201, got {response.status_code}")
                return
            token = _json(response).get("access_token")
        if not token:
            return
        session_id = self.start_session(token)
        if session_id is not None:
            self.chat(session_id, token, turns=2)
            self.get_json(f"{API}/memory/context?limit=5", token, name=f"{API}/memory/context")


class AnonymousUser(ChatUser):
    """Chats without an account; the design says it never touches memory (count 0)."""

    weight = 1
    wait_time = between(2, 6)
    persona = "anonymous"

    @tag("anonymous", "chat")
    @task
    def chat_anonymously(self) -> None:
        session_id = self.start_session(None)
        if session_id is not None:
            self.chat(session_id, None, turns=2)

    def memory_problem(self, event: dict[str, Any]) -> str | None:
        if event.get("source") != "none" or event.get("memory_count", 0) != 0:
            return (
                f"anonymous session touched memory: source={event.get('source')!r} "
                f"count={event.get('memory_count')!r}"
            )
        return None


# --- small pieces ----------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    email: str
    password: str
    user_id: str


_credentials: dict[Path, list[Identity]] = {}


def load_credentials(path: str | os.PathLike[str]) -> list[Identity]:
    """Rows of ``memlayer seed``'s CSV, read once per process; [] if the file is missing."""
    resolved = Path(path).resolve()
    if resolved not in _credentials:
        try:
            with resolved.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        except FileNotFoundError:
            return []
        _credentials[resolved] = [
            Identity(row["email"], row["password"], row.get("user_id") or "")
            for row in rows
            if row.get("email") and row.get("password")
        ]
    return _credentials[resolved]


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _receive(ws: websocket.WebSocket) -> tuple[dict[str, Any], int]:
    """The next JSON event and its size; a close frame becomes :class:`SocketClosed`."""
    opcode, data = ws.recv_data()
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        raise SocketClosed(code, data[2:].decode("utf-8", "replace"))
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise ChatFailed(f"not JSON: {data[:80]!r}") from exc
    if not isinstance(event, dict):
        raise ChatFailed(f"not an event object: {data[:80]!r}")
    return event, len(data)


# --- watching the service while the swarm runs -------------------------------------------


class ServiceWatcher:
    """Scrapes ``/metrics`` every few seconds on the master (or the only process).

    Keeps the latest window (since the previous scrape) and the totals since the test
    started, and logs one line per scrape so headless runs show the numbers as they go.
    """

    def __init__(self, environment: Environment, interval: float) -> None:
        self.environment = environment
        self.interval = interval
        self.baseline: tuple[float, ServiceCounters] | None = None
        self.previous: tuple[float, ServiceCounters] | None = None
        self.latest: Window | None = None
        self.error: str | None = None
        self._greenlet: gevent.Greenlet | None = None

    def metrics_url(self) -> str | None:
        host = self.environment.host
        if not host:
            hosts = {cls.host for cls in self.environment.user_classes if cls.host}
            host = hosts.pop() if len(hosts) == 1 else None
        return f"{host.rstrip('/')}/metrics" if host else None

    def start(self) -> None:
        if self.interval > 0 and self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def restart_baseline(self) -> None:
        self.baseline = None
        self.scrape()

    def _loop(self) -> None:
        while True:
            self.scrape()
            if self.latest is not None and self.previous is not None:
                log.info("memlayer: %s", self.one_line())
            gevent.sleep(self.interval)

    def scrape(self) -> None:
        url = self.metrics_url()
        if url is None:
            self.error = "no host to scrape"
            return
        try:
            response = requests.get(url, timeout=min(max(self.interval, 1.0), 5.0))
            response.raise_for_status()
        except requests.RequestException as exc:
            if self.error is None:
                log.warning("memlayer: cannot scrape %s: %s", url, exc)
            self.error = str(exc)
            return
        self.error = None
        now, counters = time.monotonic(), ServiceCounters.from_text(response.text)
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
                f"hit ratio {format_ratio(latest.hit_ratio)} (last {latest.seconds:.0f}s), "
                f"db {latest.db_qps:.1f} q/s"
            )
        if total is not None:
            parts.append(f"since start {format_ratio(total.hit_ratio)}, db {total.db_qps:.1f} q/s")
        return "; ".join(parts) or (self.error or "no scrape yet")

    def rows(self) -> list[dict[str, str]]:
        """The web UI's memlayer table: service numbers, then memory sources per persona."""
        latest, total = self.latest, self.since_start()
        rows = [
            {"metric": "cache hit ratio (last scrape)", "value": _ratio_of(latest)},
            {"metric": "cache hit ratio (since start)", "value": _ratio_of(total)},
            {"metric": "postgres queries/s (last scrape)", "value": _qps_of(latest)},
            {"metric": "postgres queries/s (since start)", "value": _qps_of(total)},
        ]
        if self.error:
            rows.append({"metric": "scrape error", "value": self.error[:120]})
        rows.extend(source_rows(SOURCES.snapshot()))
        return rows

    def summary(self) -> dict[str, Any]:
        latest, total = self.latest, self.since_start()
        return {
            "metrics_url": self.metrics_url(),
            "hit_ratio_last": latest.hit_ratio if latest else None,
            "hit_ratio_since_start": total.hit_ratio if total else None,
            "db_qps_last": latest.db_qps if latest else None,
            "db_qps_since_start": total.db_qps if total else None,
            "cache_lookups_since_start": total.cache_lookups if total else None,
            "scrape_error": self.error,
            "memory_sources": SOURCES.snapshot(),
        }


def _ratio_of(w: Window | None) -> str:
    return format_ratio(w.hit_ratio) if w else "n/a"


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


def summary_table(watcher: ServiceWatcher) -> str:
    rows = watcher.rows()
    width = max(len(row["metric"]) for row in rows)
    lines = ["memlayer summary", "-" * (width + 30)]
    lines += [f"{row['metric']:<{width}}  {row['value']}" for row in rows]
    return "\n".join(lines)


# --- wiring into Locust's events ---------------------------------------------------------

_watcher: ServiceWatcher | None = None


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global _watcher
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # Workers run users; their memory-source counts ride along in each stats report.
        @environment.events.report_to_master.add_listener
        def _send_sources(client_id: str, data: dict[str, Any], **_: Any) -> None:
            data[REPORT_KEY] = SOURCES.drain()

        return

    if isinstance(runner, MasterRunner):

        @environment.events.worker_report.add_listener
        def _merge_sources(client_id: str, data: dict[str, Any], **_: Any) -> None:
            SOURCES.merge(data.get(REPORT_KEY) or {})

    interval = float(_option(environment, "memlayer_scrape_interval", 5.0))
    _watcher = ServiceWatcher(environment, interval)
    if runner is not None:  # run_single_user has no runner and needs no dashboard
        _watcher.start()
    if environment.web_ui is not None:
        _extend_web_ui(environment, _watcher)


def _extend_web_ui(environment: Environment, watcher: ServiceWatcher) -> None:
    web_ui = environment.web_ui
    assert web_ui is not None
    web_ui.template_args["extended_tabs"] = [{"title": "memlayer", "key": "memlayer"}]
    web_ui.template_args["extended_tables"] = [
        {
            "key": "memlayer",
            "structure": [
                {"key": "metric", "title": "Metric"},
                {"key": "value", "title": "Value"},
            ],
        }
    ]

    @web_ui.app.after_request
    def _add_memlayer_rows(response: Response) -> Response:
        if request.path != "/stats/requests" or not response.is_json:
            return response
        body = response.get_json()
        body["extended_stats"] = [{"key": "memlayer", "data": watcher.rows()}]
        response.set_data(json.dumps(body))
        return response

    @web_ui.app.route("/memlayer")
    def _memlayer_summary() -> Response:
        return jsonify(watcher.summary())


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or _watcher is None:
        return
    SOURCES.reset()
    if _watcher.interval > 0:
        gevent.spawn(_watcher.restart_baseline)


@events.reset_stats.add_listener
def _on_reset_stats(**_: Any) -> None:
    SOURCES.reset()
    if _watcher is not None and _watcher.interval > 0:
        gevent.spawn(_watcher.restart_baseline)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or _watcher is None:
        return
    if _watcher.interval > 0:
        _watcher.scrape()  # the last word on the counters, after the last request
    _watcher.stop()
    log.info("\n%s", summary_table(_watcher))
    report = str(_option(environment, "memlayer_report", ""))
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps(_watcher.summary(), indent=2) + "\n")


if __name__ == "__main__":
    run_single_user(ReturningUser)
