"""WebSocket chat sessions (the host app's ``sessions`` table)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from memlayer.memory.db import Database
from memlayer.memory.errors import InvalidMemory, UnknownUser
from memlayer.memory.models import Session, User, utcnow


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str
    user_id: int | None
    metadata: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    last_activity: datetime
    request_count: int


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


class SessionManager:
    """Creates, validates and expires sessions; a session lives ``ttl`` (24 h by default)."""

    def __init__(self, database: Database, ttl: timedelta = timedelta(hours=24)) -> None:
        self._db = database
        self._ttl = ttl

    async def create_session(
        self, user_id: int | None, metadata: dict[str, Any] | None = None
    ) -> tuple[str, datetime]:
        """A new ``session-<uuid>`` for a user (or anonymous); returns (id, expires_at)."""
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidMemory("session metadata must be a JSON object")
        now = utcnow()
        session_id = f"session-{uuid.uuid4()}"
        expires_at = now + self._ttl
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
        """The session if it exists and has not expired, else None."""
        async with self._db.sessionmaker() as db:
            row = await db.scalar(
                select(Session).where(
                    Session.session_id == session_id, Session.expires_at > utcnow()
                )
            )
            return _info(row) if row is not None else None

    async def validate_session(self, session_id: str) -> bool:
        return await self.get_session(session_id) is not None

    async def touch(self, session_id: str) -> bool:
        """Record activity: last_activity moves, request_count goes up. False if expired."""
        async with self._db.transaction() as db:
            result = await db.execute(
                update(Session)
                .where(Session.session_id == session_id, Session.expires_at > utcnow())
                .values(last_activity=utcnow(), request_count=Session.request_count + 1)
                .returning(Session.session_id)
            )
            return result.first() is not None

    async def delete_session(self, session_id: str) -> bool:
        async with self._db.transaction() as db:
            result = await db.execute(
                delete(Session)
                .where(Session.session_id == session_id)
                .returning(Session.session_id)
            )
            return result.first() is not None

    async def cleanup_expired(self) -> int:
        """Delete expired sessions; returns how many."""
        async with self._db.transaction() as db:
            result = await db.execute(
                delete(Session).where(Session.expires_at <= utcnow()).returning(Session.session_id)
            )
            return len(result.all())
