"""Session start, the chat WebSocket, and the caller's conversation history."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, WebSocket, WebSocketDisconnect, status
from sqlalchemy.exc import SQLAlchemyError

from memlayer.api.deps import OptionalUser, OwnUser, Services
from memlayer.api.metrics import WS_SESSIONS_ACTIVE, WS_TURNS
from memlayer.api.schemas import ChatStartIn, ChatStartOut, ConversationOut, ConversationsOut
from memlayer.memory.errors import MemoryLayerError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/chat", tags=["chat"])

QUERY_MAX_CHARS = 2000
CLOSE_UNKNOWN_SESSION = 4004
CLOSE_UNAVAILABLE = 4503


@router.post("/start", status_code=status.HTTP_201_CREATED, response_model=ChatStartOut)
async def start_chat(
    services: Services, user: OptionalUser, body: ChatStartIn | None = None
) -> ChatStartOut:
    """Start a chat session: signed-in with a bearer token, anonymous without one."""
    body = body or ChatStartIn()
    if body.user_id is not None and body.user_id != user:
        raise HTTPException(403, "user_id in the body must equal the authenticated user")
    session_id, expires_at = await services.sessions.create_session(user, body.metadata)
    return ChatStartOut(session_id=session_id, expires_at=expires_at, user_id=user)


@router.get("/conversations", response_model=ConversationsOut)
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


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _parse_frame(raw: str) -> str:
    """The query of a client frame, or ValueError with what is wrong."""
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError("frame is not valid JSON") from exc
    if not isinstance(frame, dict) or frame.get("type") != "query":
        raise ValueError('expected {"type": "query", "query": "..."}')
    query = frame.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string")
    if len(query) > QUERY_MAX_CHARS:
        raise ValueError(f"query is longer than {QUERY_MAX_CHARS} characters")
    return query.strip()


@router.websocket("/ws/{session_id}")
async def chat_socket(websocket: WebSocket, session_id: str) -> None:
    services = websocket.app.state.services
    try:
        session = await services.sessions.get_session(session_id)
    except (MemoryLayerError, SQLAlchemyError, OSError):
        await websocket.accept()
        await websocket.close(CLOSE_UNAVAILABLE, "session store unavailable; retry shortly")
        return
    await websocket.accept()
    if session is None:
        await websocket.close(CLOSE_UNKNOWN_SESSION, "unknown or expired session")
        return
    emitter = SocketEmitter(websocket)
    user_id = session.user_id
    conversation_id: str | None = None
    WS_SESSIONS_ACTIVE.inc()
    try:
        await emitter.emit({"type": "connected", "session_id": session_id, "user_id": user_id})
        while True:
            raw = await websocket.receive_text()
            try:
                query = _parse_frame(raw)
            except ValueError as exc:
                await emitter.emit({"type": "error", "message": str(exc)})
                continue
            conversation_id = await _turn(
                services, emitter, session_id, user_id, query, conversation_id
            )
            if emitter.closed:
                break
    except WebSocketDisconnect:
        pass
    finally:
        WS_SESSIONS_ACTIVE.dec()


async def _turn(
    services: Any,
    emitter: SocketEmitter,
    session_id: str,
    user_id: int | None,
    query: str,
    conversation_id: str | None,
) -> str | None:
    """One chat turn. Storage trouble around the turn never stops the answer."""
    try:
        await services.sessions.touch(session_id)
        if user_id is not None and conversation_id is None:
            conversation_id = await services.history.start_conversation(user_id, query)
    except (MemoryLayerError, SQLAlchemyError, OSError) as exc:
        log.warning("session bookkeeping failed for %s: %s", session_id, exc)
    try:
        result = await services.workflow.run_turn(
            query=query,
            session_id=session_id,
            user_id=user_id,
            chat_session_id=conversation_id,
            emitter=emitter,
        )
    except WebSocketDisconnect:
        raise
    except Exception:  # the workflow's own failure: tell the client, keep the socket
        log.exception("chat turn failed in session %s", session_id)
        WS_TURNS.labels("error").inc()
        await emitter.emit({"type": "error", "message": "the assistant failed on this query"})
        return conversation_id
    WS_TURNS.labels("ok").inc()
    if user_id is not None and conversation_id is not None:
        try:
            await services.history.append_turn(conversation_id, query, result.response)
        except (MemoryLayerError, SQLAlchemyError, OSError) as exc:
            log.warning("could not store chat history of %s: %s", session_id, exc)
    return conversation_id
