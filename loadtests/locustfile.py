"""Load test of memlayer: three personas chatting over HTTP and WebSocket.

- ``ReturningUser`` logs in as a seeded user (``memlayer seed ... --out credentials.csv``),
  chosen with a Zipf-like skew so a hot set of users comes back often; this is the traffic
  the cache tiers exist for, and its ``memory_loaded`` events should say ``source=near``
  (the serving process's near-cache) or ``source=cache`` (Redis).
- ``NewUser`` registers a fresh account and has its first chat (cold path, empty context).
- ``AnonymousUser`` chats without a token; it must never touch either memory tier.

A signed-in persona's socket authenticates with its ``Authorization: Bearer`` header (the
server also takes a first ``auth`` frame, which is what browsers send). The server under test
must have its per-address abuse limits raised (``MEMLAYER_RATE_LIMIT_REGISTER``,
``MEMLAYER_RATE_LIMIT_ANONYMOUS_START``): every Locust user shares one address.

WebSocket turns are reported to Locust as request type ``WS`` (``connect``, ``turn``,
``memory_loaded``) so they get percentiles and failures like HTTP requests. While the test
runs, the master (or the single local process) reads the service's ops summary and shows
the cache hit ratio and Postgres queries/s in the log, in a "memlayer" tab of the web UI
(and as JSON at ``/memlayer``), and in a summary when Locust quits.

The modules beside this file: ``load_options`` (the ``--memlayer-*`` options),
``service_watch`` (the watcher and its wiring into Locust's events), ``web_tab`` (the web
UI tab), ``service_counters`` (rates between two ops summaries), ``tally`` (memory sources
per persona across workers), ``popularity`` (the Zipf choice of returning users) and
``smoke`` (a headless run from tests and scripts).

Run ``python loadtests/locustfile.py`` to drive one ReturningUser in a debugger.
"""

from __future__ import annotations

# Locust first: importing it gevent-patches the standard library (ssl, socket), which
# requests and websocket-client must see patched. Matters for `python locustfile.py`.
import locust  # noqa: F401

# isort: split

import csv
import json
import os
import random
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import websocket
from load_options import option
from locust import HttpUser, between, events, run_single_user, tag, task
from locust.exception import StopUser
from popularity import ZipfPicker
from service_watch import LiveView
from tally import MemorySourceTally

API = "/api/v1"


class TurnOutcome(Enum):
    ANSWERED = "answered"
    SAVE_UNKNOWN = "save_unknown"  # answered, but whether the memory was saved is unknown
    FAILED = "failed"


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


# --- the personas ----------------------------------------------------------------------

# Which tier served each persona's memory; the master shows it next to the service's numbers.
SOURCES = MemorySourceTally()
LiveView(SOURCES).attach(events)


class ChatFailed(Exception):
    """A WebSocket turn that did not end in ``final_response``."""


class SocketClosed(ChatFailed):
    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"socket closed by server (code {code}) {reason}".strip())


class ChatUser(HttpUser):
    """Shared moves of every persona: start a session, chat over the WebSocket."""

    abstract = True
    host = "http://127.0.0.1:8000"
    persona: ClassVar[str] = "chat"

    # --- HTTP ----------------------------------------------------------------------

    def auth(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def call(
        self,
        method: str,
        path: str,
        *,
        expect: int,
        token: str | None = None,
        body: dict[str, Any] | None = None,
        field: str | None = None,
    ) -> dict[str, Any] | None:
        """One API call, reported under its path without the query string.

        Its JSON answer; ``None`` (and a failure in Locust's stats) for another status than
        ``expect`` or an answer without ``field``.
        """
        with self.client.request(
            method,
            f"{API}{path}",
            json=body,
            headers=self.auth(token),
            name=f"{API}{path.partition('?')[0]}",
            catch_response=True,
        ) as response:
            if response.status_code != expect:
                response.failure(f"expected {expect}, got {response.status_code}")
                return None
            answer = _json(response)
            if field is not None and not answer.get(field):
                response.failure(f"no {field} in the answer")
                return None
            return answer

    def start_session(self, token: str | None) -> str | None:
        metadata = {"persona": self.persona, "client": "locust"}
        answer = self.call(
            "POST",
            "/chat/start",
            expect=201,
            token=token,
            body={"metadata": metadata},
            field="session_id",
        )
        return str(answer["session_id"]) if answer else None

    # --- WebSocket -----------------------------------------------------------------

    def ws_url(self, session_id: str) -> str:
        parts = urlsplit(self.host or "")
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path.rstrip('/')}{API}/chat/ws/{session_id}"
        return urlunsplit((scheme, parts.netloc, path, "", ""))

    def chat(self, session_id: str, token: str | None, turns: int) -> None:
        """Hold one WebSocket conversation of up to ``turns`` questions.

        A turn whose memory save had an unknown outcome is sent once more with the same
        turn id (reported as ``turn_retry``): the server stores it at most once.
        """
        timeout = float(option(self.environment, "memlayer_turn_timeout", 30.0))
        with self._socket(session_id, token, timeout) as ws:
            if ws is None:
                return
            for n in range(turns):
                if n:
                    self.wait()  # a person reads the answer and types the next question
                query, turn_id = random.choice(QUERIES), str(uuid.uuid4())
                outcome = self.turn(ws, query, timeout, turn_id)
                if outcome is TurnOutcome.SAVE_UNKNOWN:
                    outcome = self.turn(ws, query, timeout, turn_id, name="turn_retry")
                if outcome is TurnOutcome.FAILED:
                    break  # a broken conversation does not go on

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

    def turn(
        self,
        ws: websocket.WebSocket,
        query: str,
        timeout: float,
        turn_id: str | None = None,
        name: str = "turn",
    ) -> TurnOutcome:
        """Send one query and read events up to ``final_response``; report it to Locust."""
        started = time.perf_counter()
        deadline = started + timeout
        received = 0
        memory_seen = False
        save_unknown = False
        turn_id = turn_id or str(uuid.uuid4())
        try:
            ws.send(json.dumps({"type": "query", "query": query, "turn_id": turn_id}))
            while True:
                ws.settimeout(max(deadline - time.perf_counter(), 0.001))
                event, size = _receive(ws)
                received += size
                kind = event.get("type")
                if kind == "memory_loaded":
                    memory_seen = True
                    self._memory_loaded(event, started)
                elif kind == "memory_unavailable" and event.get("outcome") == "unknown":
                    save_unknown = True
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
            self._fire(name, started, received, exc)
            return TurnOutcome.FAILED
        self._fire(name, started, received, None)
        return TurnOutcome.SAVE_UNKNOWN if save_unknown else TurnOutcome.ANSWERED

    def _memory_loaded(self, event: dict[str, Any], started: float) -> None:
        source = str(event.get("source", "unknown"))
        SOURCES.record(self.persona, source)
        problem = self.memory_problem(event)
        self._fire("memory_loaded", started, 0, ChatFailed(problem) if problem else None)

    def memory_problem(self, event: dict[str, Any]) -> str | None:
        """A persona's invariant that this ``memory_loaded`` event breaks, if any."""
        if event.get("source") not in {"near", "cache", "database", "none"}:
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
        path = str(option(self.environment, "memlayer_credentials", "loadtests/credentials.csv"))
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
        exponent = float(option(self.environment, "memlayer_zipf", 1.1))
        self.picker = ZipfPicker(len(self.identities), exponent)

    def token(self, identity: Identity) -> str | None:
        cached = self._tokens.get(identity.email)
        if cached and time.monotonic() - cached[1] < self.token_max_age:
            return cached[0]
        answer = self.call(
            "POST",
            "/auth/login",
            expect=200,
            body={"email": identity.email, "password": identity.password},
            field="access_token",
        )
        if answer is None:
            return None
        token = str(answer["access_token"])
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
        self.chat(session_id, token, int(option(self.environment, "memlayer_turns", 3)))
        self.browse(token)

    @tag("returning", "history")
    @task(1)
    def look_back(self) -> None:
        identity = self.picker.choice(self.identities)
        token = self.token(identity)
        if token is not None:
            self.browse(token)

    def browse(self, token: str) -> None:
        self.call("GET", "/chat/conversations?limit=10", expect=200, token=token)
        self.call("GET", "/memory/context?limit=5", expect=200, token=token)


class NewUser(ChatUser):
    """Signs up and has a first chat: the cold path, with an empty memory context."""

    weight = 1
    wait_time = between(3, 8)
    persona = "new"

    @tag("new", "chat")
    @task
    def sign_up_and_chat(self) -> None:
        email = f"load-{uuid.uuid4().hex[:20]}@example.com"
        answer = self.call(
            "POST",
            "/auth/register",
            expect=201,
            body={"email": email, "password": secrets.token_urlsafe(16)},
            field="access_token",
        )
        if answer is None:
            return
        token = str(answer["access_token"])
        session_id = self.start_session(token)
        if session_id is not None:
            self.chat(session_id, token, turns=2)
            self.call("GET", "/memory/context?limit=5", expect=200, token=token)


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
            Identity(row["email"], row["password"])
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


if __name__ == "__main__":
    run_single_user(ReturningUser)
