"""Session start and end, the chat WebSocket, and the caller's conversation history.

The chat socket, ``WS /api/v1/chat/ws/{session_id}`` (the id is a handle, never a
credential):

* **Signed-in session** (started with a bearer token): nothing is answered and no turn
  runs until the socket is authenticated as the session's owner, either by the handshake
  header ``Authorization: Bearer <token>`` (non-browser clients) or by a first frame
  ``{"type": "auth", "token": "<token>"}`` (browsers cannot set headers) sent within
  ``MEMLAYER_WS_AUTH_TIMEOUT_SECONDS``. Then the server sends ``connected``.
* **Anonymous session** (started without a token): ``connected`` comes at once, and it
  stays anonymous: a token shown on it (header or auth frame) is ignored without a reply.
* **Every frame** first re-checks the session row in Postgres (one statement that also
  records the activity and, for a turn, reads the short-term state), so an expiry or an
  end written by any process takes effect on the next frame. If Postgres cannot answer
  that check, the socket carries on with what it last verified (the known expiry is still
  enforced): a database outage costs memory, not the chat (docs/architecture.md, invariant 8).
* A turn is ``{"type": "query", "query": "...", "turn_id": "<uuid>"}``; its events end
  with ``final_response`` (which carries the turn id). ``turn_id`` is optional (the server
  picks one when it is absent) and makes the turn's memory save idempotent: a client that
  retries a turn whose save outcome was unknown (``memory_unavailable`` with ``outcome:
  "unknown"``) sends the same id, and the memory is stored once.
  If a signed-in turn's history could not be stored, ``history_unavailable`` comes just
  before ``final_response``. A frame the server cannot take (bad JSON, binary, a NUL
  character, too long) gets an ``error`` event and the socket carries on.

Close codes, each with a reason: 4004 unknown, expired or ended session; 4401 not
authenticated (no or invalid token, no auth frame in time, another first frame); 4403 a
token of another user, or the owner's account is deactivated; 4503 the session store is
unavailable when the socket opens.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request, WebSocket, status
from fastapi.websockets import WebSocketDisconnect
from prometheus_client import Counter

from memlayer.api.auth import InvalidToken
from memlayer.api.deps import CurrentUser, OptionalUser, OwnUser, Services, client_address
from memlayer.api.metrics import WS_SESSIONS_ACTIVE, WS_TURNS
from memlayer.api.openapi import WITH_BODY, errors
from memlayer.api.ratelimit import Limit
from memlayer.api.schemas import (
    ChatStartIn,
    ChatStartOut,
    ConversationOut,
    ConversationsOut,
    SessionEndedOut,
)
from memlayer.api.services import AppServices
from memlayer.memory.errors import MemoryLayerError
from memlayer.memory.sessions import SessionCheck, SessionStatus
from memlayer.supervisor.state import RECENT_TURNS_KEPT

log = logging.getLogger(__name__)
router = APIRouter(prefix="/chat", tags=["chat"])

QUERY_MAX_CHARS = 2000

SESSION_CHECKS = Counter(
    "memlayer_ws_session_checks_total",
    "Per-frame session checks by outcome: active, closed (expired, ended or unknown), "
    "user_inactive, or unavailable (Postgres did not answer; the last verified state held).",
    ["outcome"],
)


class Close(IntEnum):
    UNKNOWN_SESSION = 4004
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    UNAVAILABLE = 4503


# --- HTTP ----------------------------------------------------------------------------


@router.post(
    "/start",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatStartOut,
    responses=errors(*WITH_BODY, 401, 403, 404, 429, 503),
    # The bearer token is optional: without one the session is anonymous.
    openapi_extra={"security": [{}]},
)
async def start_chat(
    services: Services, user: OptionalUser, request: Request, body: ChatStartIn | None = None
) -> ChatStartOut:
    """Start a chat session: signed-in with a bearer token, anonymous without one."""
    body = body or ChatStartIn()
    if body.user_id is not None and body.user_id != user:
        raise HTTPException(403, "user_id in the body must equal the authenticated user")
    if user is None:
        await services.limiter.hit(Limit.ANONYMOUS_START, client_address(request))
    session_id, expires_at = await services.sessions.create_session(user, body.metadata)
    return ChatStartOut(session_id=session_id, expires_at=expires_at, user_id=user)


@router.post(
    "/sessions/{session_id}/end",
    response_model=SessionEndedOut,
    responses=errors(401, 404, 422, 503),
    summary="End one of the caller's sessions (every process refuses it from its next frame)",
)
async def end_session(
    services: Services,
    user: CurrentUser,
    session_id: Annotated[str, Path(min_length=1, max_length=100)],
) -> SessionEndedOut:
    ended_at = await services.sessions.end_session(session_id, user)
    return SessionEndedOut(session_id=session_id, ended_at=ended_at)


@router.get("/conversations", response_model=ConversationsOut, responses=errors(401, 403, 422, 503))
async def conversations(
    services: Services, user: OwnUser, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> ConversationsOut:
    listed = await services.history.list_conversations(user, limit)
    return ConversationsOut(
        conversations=[
            ConversationOut(
                session_id=c.session_id,
                title=c.title,
                created_at=c.created_at,
                last_message=c.last_message,
                message_count=c.message_count,
            )
            for c in listed
        ]
    )


# --- the socket's frames -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryFrame:
    query: str
    turn_id: str  # the client's (a canonical UUID), or one the server picked


@dataclass(frozen=True, slots=True)
class AuthFrame:
    token: str


@dataclass(frozen=True, slots=True)
class BadFrame:
    message: str


Frame = QueryFrame | AuthFrame | BadFrame


def parse_frame(message: Mapping[str, Any]) -> Frame:
    """What a received WebSocket message asks for (never raises; never echoes it)."""
    raw = message.get("text")
    if raw is None:
        return BadFrame("binary frames are not supported; send JSON text frames")
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return BadFrame("frame is not valid JSON")
    if isinstance(frame, dict) and frame.get("type") == "auth":
        token = frame.get("token")
        return AuthFrame(token) if isinstance(token, str) else BadFrame("auth needs a token")
    if not isinstance(frame, dict) or frame.get("type") != "query":
        return BadFrame('expected {"type": "query", "query": "..."}')
    query = frame.get("query")
    if not isinstance(query, str) or not query.strip():
        return BadFrame("query must be a non-empty string")
    if len(query) > QUERY_MAX_CHARS:
        return BadFrame(f"query is longer than {QUERY_MAX_CHARS} characters")
    if "\x00" in query:
        return BadFrame("query must not contain NUL characters (\\u0000)")
    turn_id = frame.get("turn_id")
    if turn_id is None:
        return QueryFrame(query.strip(), str(uuid.uuid4()))
    try:
        if not isinstance(turn_id, str) or len(turn_id) > 64:
            raise ValueError(turn_id)
        return QueryFrame(query.strip(), str(uuid.UUID(turn_id)))
    except ValueError:
        return BadFrame("turn_id must be a UUID string (or left out: the server picks one)")


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


class SocketEmitter:
    """Sends progress events to the client as they happen.

    Never raises: a client that went away mid-turn must not stop the turn, whose memory
    is still saved; the handler notices ``closed`` and ends the loop afterwards.
    """

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        self.closed = False

    async def emit(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        event.setdefault("timestamp", _now())
        try:
            await self._ws.send_text(orjson.dumps(event).decode())
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closed = True


class HoldFinal:
    """Forwards a turn's events but keeps ``final_response`` until the turn is stored, so
    it stays the last event of a turn and a storage problem is told before it."""

    def __init__(self, emitter: SocketEmitter) -> None:
        self._emitter = emitter
        self._final: dict[str, Any] | None = None

    async def emit(self, event: dict[str, Any]) -> None:
        if event.get("type") == "final_response":
            self._final = event
        else:
            await self._emitter.emit(event)

    async def release(self) -> None:
        if self._final is not None:
            await self._emitter.emit(self._final)


def _now() -> str:
    return datetime.now(UTC).isoformat()


# --- the socket ------------------------------------------------------------------------


class ChatSocket:
    """One open chat socket: authentication, then a checked frame loop."""

    def __init__(self, websocket: WebSocket, services: AppServices, session_id: str) -> None:
        self.ws = websocket
        self.services = services
        self.session_id = session_id
        self.emitter = SocketEmitter(websocket)
        self.user_id: int | None = None
        self.expires_at: datetime | None = None
        self.turn = 0

    async def close(self, code: Close, reason: str) -> None:
        try:
            await self.ws.close(int(code), reason)
        except (RuntimeError, OSError):  # the client already went away
            pass

    async def run(self) -> None:
        await self.ws.accept()
        try:
            opened = await self.services.sessions.open(self.session_id)
        except MemoryLayerError:
            await self.close(Close.UNAVAILABLE, "session store unavailable; retry shortly")
            return
        if not await self._admit(opened):
            return
        WS_SESSIONS_ACTIVE.inc()
        try:
            await self.emitter.emit(
                {"type": "connected", "session_id": self.session_id, "user_id": self.user_id}
            )
            await self._loop()
        except WebSocketDisconnect:
            pass
        finally:
            WS_SESSIONS_ACTIVE.dec()

    async def _admit(self, opened: SessionCheck) -> bool:
        """Refuse a closed session or an inactive owner; authenticate a signed-in one."""
        if opened.status is SessionStatus.CLOSED:
            await self.close(Close.UNKNOWN_SESSION, "unknown, expired or ended session")
            return False
        if opened.status is SessionStatus.USER_INACTIVE:
            await self.close(Close.FORBIDDEN, "the session's account is deactivated")
            return False
        self.expires_at, self.turn = opened.expires_at, opened.turn
        if opened.user_id is None:
            return True  # anonymous, and it stays so: tokens shown on it are ignored
        token = bearer_token(self.ws.headers.get("authorization"))
        if token is None:
            token = await self._auth_frame()
            if token is None:
                return False
        try:
            user_id = self.services.tokens.verify(token)
        except InvalidToken:
            await self.close(Close.UNAUTHENTICATED, "invalid or expired token")
            return False
        if user_id != opened.user_id:
            await self.close(Close.FORBIDDEN, "this session belongs to another user")
            return False
        self.user_id = user_id
        return True

    async def _auth_frame(self) -> str | None:
        """The token of the first frame, which must be an auth frame sent in time."""
        deadline = self.services.settings.ws_auth_timeout_seconds
        try:
            async with asyncio.timeout(deadline):
                message = await self.ws.receive()
        except TimeoutError:
            await self.close(Close.UNAUTHENTICATED, f"no auth frame within {deadline:g} s")
            return None
        if message["type"] == "websocket.disconnect":
            return None
        frame = parse_frame(message)
        if not isinstance(frame, AuthFrame):
            await self.close(
                Close.UNAUTHENTICATED,
                'authenticate first: send {"type": "auth", "token": "..."} or the '
                "Authorization header",
            )
            return None
        return frame.token

    async def _loop(self) -> None:
        while not self.emitter.closed:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = parse_frame(message)
            check = await self._check(turn=isinstance(frame, QueryFrame))
            if check is None:
                return
            if isinstance(frame, BadFrame):
                await self.emitter.emit({"type": "error", "message": frame.message})
            elif isinstance(frame, QueryFrame):
                await self._turn(frame, check)
            # An auth frame after admission (or on an anonymous session) changes nothing.

    async def _check(self, *, turn: bool) -> SessionCheck | None:
        """The session as Postgres has it now; None after closing the socket."""
        sessions = self.services.sessions
        try:
            check = await sessions.check_frame(
                self.session_id,
                turn=turn,
                recent_turns=RECENT_TURNS_KEPT if self.user_id is not None else 0,
            )
        except MemoryLayerError as exc:  # Postgres did not answer: keep what we verified
            log.warning("session check of %s failed: %s", self.session_id, exc)
            SESSION_CHECKS.labels("unavailable").inc()
            if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
                await self.close(Close.UNKNOWN_SESSION, "session expired")
                return None
            self.turn += int(turn)
            return SessionCheck(
                SessionStatus.ACTIVE,
                user_id=self.user_id,
                expires_at=self.expires_at,
                turn=self.turn,
            )
        SESSION_CHECKS.labels(check.status.value).inc()
        if check.status is SessionStatus.CLOSED:
            await self.close(Close.UNKNOWN_SESSION, "session expired or ended")
            return None
        if check.status is SessionStatus.USER_INACTIVE:
            await self.close(Close.FORBIDDEN, "the session's account is deactivated")
            return None
        self.expires_at, self.turn = check.expires_at, check.turn
        return check

    async def _turn(self, frame: QueryFrame, check: SessionCheck) -> None:
        """One chat turn. Storage trouble around the turn never stops the answer."""
        services, user_id, query = self.services, self.user_id, frame.query
        conversation_id = check.conversation_id
        if user_id is not None and conversation_id is None:
            try:
                conversation_id = await services.sessions.conversation_for(
                    self.session_id, user_id, query
                )
            except MemoryLayerError as exc:
                log.warning("no conversation for %s: %s", self.session_id, exc)
        held = HoldFinal(self.emitter)
        try:
            result = await services.workflow.run_turn(
                query=query,
                session_id=self.session_id,
                user_id=user_id,
                chat_session_id=conversation_id,
                emitter=held,
                turn=check.turn,
                turn_id=frame.turn_id,
                recent_turns=[
                    {"query": t.query, "response": t.response} for t in check.recent_turns
                ],
            )
        except Exception:  # the workflow's own failure: tell the client, keep the socket
            log.exception("chat turn failed in session %s", self.session_id)
            WS_TURNS.labels("error").inc()
            await self.emitter.emit(
                {"type": "error", "message": "the assistant failed on this query"}
            )
            return
        WS_TURNS.labels("ok").inc()
        if user_id is not None and not await self._store_history(
            conversation_id, query, result.response
        ):
            await self.emitter.emit(
                {
                    "type": "history_unavailable",
                    "message": "이번 대화를 대화 기록에 저장하지 못했어요.",
                }
            )
        await held.release()

    async def _store_history(self, conversation_id: str | None, query: str, answer: str) -> bool:
        if conversation_id is None:
            return False
        try:
            await self.services.history.append_turn(conversation_id, query, answer)
        except MemoryLayerError as exc:
            log.warning("could not store chat history of %s: %s", self.session_id, exc)
            return False
        return True


@router.websocket("/ws/{session_id}")
async def chat_socket(websocket: WebSocket, session_id: str) -> None:
    await ChatSocket(websocket, websocket.app.state.services, session_id).run()
