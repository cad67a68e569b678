"""Chat history of signed-in users (the host app's chat_sessions / chat_messages)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from memlayer.memory.db import Database
from memlayer.memory.dberrors import translated
from memlayer.memory.errors import InvalidMemory
from memlayer.memory.models import ChatMessage, ChatSession, utcnow

TITLE_MAX = 20


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    session_id: str
    title: str
    created_at: datetime
    last_message: str | None
    message_count: int


def title_from(text: str) -> str:
    """A conversation's title: its first query, cut to the column's 20 characters."""
    title = " ".join(text.split())
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"


class ChatHistory:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def start_conversation(self, user_id: int, first_query: str) -> str:
        with translated("starting a conversation"):
            async with self._db.transaction() as db:
                row = ChatSession(user_id=user_id, title=title_from(first_query) or "새 대화")
                db.add(row)
                await db.flush()
                return str(row.session_id)

    async def append_turn(self, conversation_id: str, query: str, answer: str) -> int:
        """Store a user query and the assistant's answer; returns the message count."""
        conv = _uuid(conversation_id)
        now = utcnow()
        if "\x00" in query or "\x00" in answer:
            raise InvalidMemory("chat history cannot store NUL characters")
        with translated("storing chat history"):
            async with self._db.transaction() as db:
                db.add(
                    ChatMessage(session_id=conv, sender_type="user", content=query, created_at=now)
                )
                db.add(
                    ChatMessage(
                        session_id=conv,
                        sender_type="assistant",
                        content=answer,
                        # The answer follows its query: it must sort as the later message.
                        created_at=now + timedelta(microseconds=1),
                    )
                )
                await db.execute(
                    update(ChatSession).where(ChatSession.session_id == conv).values(updated_at=now)
                )
                await db.flush()
                count = await db.scalar(
                    select(func.count())
                    .select_from(ChatMessage)
                    .where(ChatMessage.session_id == conv)
                )
                return int(count or 0)

    async def list_conversations(self, user_id: int, limit: int = 10) -> list[ConversationSummary]:
        """The user's conversations, newest first, each with its last message."""
        if limit < 0:
            raise InvalidMemory("limit must not be negative")
        last_message = (
            select(ChatMessage.content)
            .where(ChatMessage.session_id == ChatSession.session_id)
            .order_by(ChatMessage.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        message_count = (
            select(func.count())
            .where(ChatMessage.session_id == ChatSession.session_id)
            .scalar_subquery()
        )
        stmt = (
            select(ChatSession, last_message, message_count)
            .where(ChatSession.user_id == user_id)
            .order_by(ChatSession.updated_at.desc(), ChatSession.created_at.desc())
            .limit(limit)
        )
        with translated("listing conversations"):
            async with self._db.sessionmaker() as db:
                rows = (await db.execute(stmt)).all()
        return [
            ConversationSummary(str(c.session_id), c.title, c.created_at, last, count)
            for c, last, count in rows
        ]


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidMemory(f"not a conversation id: {value!r}") from exc
