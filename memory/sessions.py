"""WebSocket chat sessions (the host app's ``sessions`` table).

The row is the truth about a session for every API process: its owner, its expiry, whether
the owner ended it, how many turns it has had and which conversation holds its history.
A socket re-reads it before every frame (:meth:`SessionManager.check_frame`, one
statement), so an expiry or an end written by any process takes effect on the next frame
everywhere, and a session's short-term state survives its socket moving to another process.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, select, text, update

from memlayer.memory.db import Database
from memlayer.memory.dberrors import translated
from memlayer.memory.errors import InvalidMemory, SessionNotFound, UnknownUser
from memlayer.memory.history import title_from
from memlayer.memory.models import ChatMessage, ChatSession, Session, User, UTCDateTime, utcnow
from memlayer.memory.values import UnportableValue, check_portable


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str
    user_id: int | None
    metadata: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    last_activity: datetime
    request_count: int


class SessionStatus(StrEnum):
    """What a session check found."""

    ACTIVE = "active"
    CLOSED = "closed"  # unknown, expired or ended: the socket closes with 4004
    USER_INACTIVE = "user_inactive"  # the owner's account was deactivated


@dataclass(frozen=True, slots=True)
class RecentTurn:
    query: str
    response: str


@dataclass(frozen=True, slots=True)
class SessionCheck:
    """A session as one statement saw it: status, owner and short-term state."""

    status: SessionStatus
    user_id: int | None = None
    expires_at: datetime | None = None
    turn: int = 0  # turns the session has had, this frame's included
    conversation_id: str | None = None
    recent_turns: tuple[RecentTurn, ...] = ()

    @property
    def active(self) -> bool:
        return self.status is SessionStatus.ACTIVE


CLOSED = SessionCheck(SessionStatus.CLOSED)


def _info(row: Session) -> SessionInfo:
    return SessionInfo(
        session_id=row.session_id,
        user_id=row.user_id,
        metadata=dict(row.session_metadata or {}),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_activity=row.last_activity,
        request_count=row.request_count,
    )


# One statement per frame on Postgres: re-check the row, record the activity, and read
# the short-term state (turn count, conversation, its last messages) of a turn.
_PG_CHECK_FRAME = text(
    """
UPDATE sessions AS s
   SET last_activity = :now, request_count = s.request_count + :turn
 WHERE s.session_id = :sid AND s.ended_at IS NULL AND s.expires_at > :now
RETURNING s.user_id, s.expires_at, s.request_count, s.conversation_id,
  COALESCE((SELECT u.is_active FROM users u WHERE u.id = s.user_id), true) AS user_active,
  CASE WHEN :messages > 0 AND s.conversation_id IS NOT NULL THEN
    (SELECT json_agg(json_build_array(m.sender_type, m.content) ORDER BY m.created_at)
       FROM (SELECT sender_type, content, created_at FROM chat_messages
              WHERE session_id = s.conversation_id
              ORDER BY created_at DESC LIMIT :messages) m)
  END AS recent
"""
).bindparams(bindparam("now", type_=UTCDateTime))


def _pair_turns(messages: Any) -> tuple[RecentTurn, ...]:
    """Oldest first ``[sender, content]`` messages → the turns (a query and its answer)."""
    turns: list[RecentTurn] = []
    pending: str | None = None
    for sender, content in messages or ():
        if sender == "user":
            pending = content
        elif pending is not None:
            turns.append(RecentTurn(pending, content))
            pending = None
    return tuple(turns)


class SessionManager:
    """Creates, checks, ends and expires sessions; a session lives ``ttl`` (24 h by default)."""

    def __init__(self, database: Database, ttl: timedelta = timedelta(hours=24)) -> None:
        self._db = database
        self._ttl = ttl

    async def create_session(
        self, user_id: int | None, metadata: dict[str, Any] | None = None
    ) -> tuple[str, datetime]:
        """A new ``session-<uuid>`` for a user (or anonymous); returns (id, expires_at)."""
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidMemory("session metadata must be a JSON object")
        try:
            check_portable(metadata, exact_numbers=False)  # stored, never served back
        except UnportableValue as exc:
            raise InvalidMemory(f"session metadata cannot be stored: it holds {exc}") from exc
        now = utcnow()
        session_id = f"session-{uuid.uuid4()}"
        expires_at = now + self._ttl
        with translated("starting a session"):
            async with self._db.transaction() as db:
                if user_id is not None and await db.get(User, user_id) is None:
                    raise UnknownUser(user_id)
                db.add(
                    Session(
                        session_id=session_id,
                        user_id=user_id,
                        session_metadata=metadata or {},
                        created_at=now,
                        expires_at=expires_at,
                        last_activity=now,
                        request_count=0,
                    )
                )
        return session_id, expires_at

    async def get_session(self, session_id: str) -> SessionInfo | None:
        """The session if it exists, has not expired and was not ended, else None."""
        with translated("reading a session"):
            async with self._db.sessionmaker() as db:
                row = await db.scalar(
                    select(Session).where(
                        Session.session_id == session_id,
                        Session.expires_at > utcnow(),
                        Session.ended_at.is_(None),
                    )
                )
                return _info(row) if row is not None else None

    async def validate_session(self, session_id: str) -> bool:
        return await self.get_session(session_id) is not None

    async def open(self, session_id: str) -> SessionCheck:
        """A socket's first look at its session (one statement; no activity recorded)."""
        if "\x00" in session_id:  # no session has one; Postgres cannot even compare it
            return CLOSED
        stmt = (
            select(
                Session.user_id,
                Session.expires_at,
                Session.request_count,
                Session.conversation_id,
                func.coalesce(User.is_active, True).label("user_active"),
            )
            .outerjoin(User, User.id == Session.user_id)
            .where(
                Session.session_id == session_id,
                Session.ended_at.is_(None),
                Session.expires_at > utcnow(),
            )
        )
        with translated("opening a session"):
            async with self._db.sessionmaker() as db:
                row = (await db.execute(stmt)).first()
        if row is None:
            return CLOSED
        return SessionCheck(
            SessionStatus.ACTIVE if row.user_active else SessionStatus.USER_INACTIVE,
            user_id=row.user_id,
            expires_at=row.expires_at,
            turn=row.request_count,
            conversation_id=str(row.conversation_id) if row.conversation_id else None,
        )

    async def check_frame(
        self, session_id: str, *, turn: bool, recent_turns: int = 0
    ) -> SessionCheck:
        """Re-check the session before a frame and record it; a turn also counts and reads
        the short-term state (at most ``recent_turns`` earlier turns of its conversation).

        ONE statement on Postgres. CLOSED if the session is unknown, expired or ended.
        """
        if "\x00" in session_id:
            return CLOSED
        messages = 2 * recent_turns if turn else 0
        params = {"sid": session_id, "now": utcnow(), "turn": int(turn), "messages": messages}
        with translated("checking a session"):
            async with self._db.transaction() as db:
                if self._db.is_postgres:
                    row = (await db.execute(_PG_CHECK_FRAME, params)).first()
                    recent = _json(row.recent) if row is not None else None
                else:
                    row, recent = await self._check_frame_generic(db, session_id, turn, messages)
        if row is None:
            return CLOSED
        return SessionCheck(
            SessionStatus.ACTIVE if row.user_active else SessionStatus.USER_INACTIVE,
            user_id=row.user_id,
            expires_at=row.expires_at,
            turn=row.request_count,
            conversation_id=str(row.conversation_id) if row.conversation_id else None,
            recent_turns=_pair_turns(recent)[-recent_turns:] if recent_turns else (),
        )

    async def _check_frame_generic(
        self, db: Any, session_id: str, turn: bool, messages: int
    ) -> tuple[Any, Any]:
        """The same check on other dialects (embedded SQLite), in a few statements."""
        now = utcnow()
        row = (
            await db.execute(
                update(Session)
                .where(
                    Session.session_id == session_id,
                    Session.ended_at.is_(None),
                    Session.expires_at > now,
                )
                .values(last_activity=now, request_count=Session.request_count + int(turn))
                .returning(
                    Session.user_id,
                    Session.expires_at,
                    Session.request_count,
                    Session.conversation_id,
                    func.coalesce(
                        select(User.is_active).where(User.id == Session.user_id).scalar_subquery(),
                        True,
                    ).label("user_active"),
                )
            )
        ).first()
        if row is None or not messages or row.conversation_id is None:
            return row, None
        rows = await db.execute(
            select(ChatMessage.sender_type, ChatMessage.content)
            .where(ChatMessage.session_id == row.conversation_id)
            .order_by(ChatMessage.created_at.desc())
            .limit(messages)
        )
        return row, [list(r) for r in reversed(rows.all())]

    async def conversation_for(self, session_id: str, user_id: int, first_query: str) -> str | None:
        """The session's conversation, created on its first turn; the same on every process.

        Two sockets of one session racing on their first turn get one conversation: the
        row lock of the UPDATE orders them and the loser rolls its new conversation back.
        None if the session is gone.
        """
        with translated("starting a conversation"):
            async with self._db.sessionmaker() as db:
                transaction = await db.begin()
                conversation = ChatSession(
                    user_id=user_id, title=title_from(first_query) or "새 대화"
                )
                db.add(conversation)
                await db.flush()
                current = await db.scalar(
                    update(Session)
                    .where(Session.session_id == session_id)
                    .values(
                        conversation_id=func.coalesce(
                            Session.conversation_id, conversation.session_id
                        )
                    )
                    .returning(Session.conversation_id)
                )
                if current != conversation.session_id:
                    await transaction.rollback()
                    return str(current) if current is not None else None
                await transaction.commit()
                return str(conversation.session_id)

    async def end_session(self, session_id: str, user_id: int) -> datetime:
        """End one of the user's own sessions (idempotent); SessionNotFound for any other."""
        if "\x00" in session_id:
            raise SessionNotFound()
        with translated("ending a session"):
            async with self._db.transaction() as db:
                ended = await db.scalar(
                    update(Session)
                    .where(Session.session_id == session_id, Session.user_id == user_id)
                    .values(ended_at=func.coalesce(Session.ended_at, utcnow()))
                    .returning(Session.ended_at)
                )
        if not isinstance(ended, datetime):
            raise SessionNotFound()
        return ended

    async def touch(self, session_id: str) -> bool:
        """Record activity: last_activity moves, request_count goes up. False if closed."""
        return (await self.check_frame(session_id, turn=True)).status is not SessionStatus.CLOSED

    async def delete_session(self, session_id: str) -> bool:
        with translated("deleting a session"):
            async with self._db.transaction() as db:
                result = await db.execute(
                    delete(Session)
                    .where(Session.session_id == session_id)
                    .returning(Session.session_id)
                )
                return result.first() is not None

    async def cleanup_expired(self) -> int:
        """Delete expired and ended sessions; returns how many."""
        with translated("cleaning up sessions"):
            async with self._db.transaction() as db:
                result = await db.execute(
                    delete(Session)
                    .where((Session.expires_at <= utcnow()) | Session.ended_at.is_not(None))
                    .returning(Session.session_id)
                )
                return len(result.all())


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value
