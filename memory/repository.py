"""The memory aggregate in Postgres: plain methods that return records.

The repository never opens or commits transactions; the service does. On Postgres a
whole context is read with ONE statement (one snapshot, one round trip); other
dialects use a few plain queries inside the caller's transaction.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from memlayer.memory.errors import UnknownUser
from memlayer.memory.metrics import DB_QUERIES, STORED_VALUES_DROPPED
from memlayer.memory.models import (
    ConversationMemory,
    EntityMemory,
    MemoryVersion,
    User,
    UserPreference,
    utcnow,
)
from memlayer.memory.values import is_portable
from memlayer.records import EntityInput, EntityRecord, MemoryContext, MemoryRecord

log = logging.getLogger(__name__)

_PG_CONTEXT_SQL = text(
    """
SELECT
  EXISTS (SELECT 1 FROM users WHERE id = :uid) AS user_exists,
  COALESCE((SELECT version FROM memory_versions WHERE user_id = :uid), 0) AS version,
  (SELECT COALESCE(json_agg(json_build_array(
              m.id, m.summary, m.intent, m.entities, m.message_count, m.created_at,
              m.chat_session_id) ORDER BY m.created_at DESC, m.id DESC), '[]'::json)
     FROM (SELECT id, summary, intent, entities, message_count, created_at, chat_session_id
             FROM conversation_memories WHERE user_id = :uid
            ORDER BY created_at DESC, id DESC LIMIT :memories) m) AS memories,
  (SELECT COALESCE(json_object_agg(p.key, p.value), '{}'::json)
     FROM (SELECT key, value FROM user_preferences WHERE user_id = :uid
            ORDER BY updated_at DESC, key LIMIT :preferences) p) AS preferences,
  (SELECT COALESCE(json_agg(json_build_array(e.entity_type, e.name, e.mention_count, e.last_seen)
                   ORDER BY e.mention_count DESC, e.last_seen DESC), '[]'::json)
     FROM (SELECT entity_type, name, mention_count, last_seen
             FROM entity_memories WHERE user_id = :uid
            ORDER BY mention_count DESC, last_seen DESC LIMIT :entities) e) AS entities
"""
)


def _to_memory_record(row: ConversationMemory) -> MemoryRecord:
    return MemoryRecord(
        id=row.id,
        summary=row.summary,
        intent=row.intent,
        entities=_names(row.user_id, row.entities),
        message_count=row.message_count,
        created_at=row.created_at,
        chat_session_id=str(row.chat_session_id) if row.chat_session_id else None,
    )


class MemoryRepository:
    """Reads and writes one user's memory rows inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        bind = session.bind
        if bind is None:
            raise ValueError("MemoryRepository needs a session bound to an engine")
        self._dialect = bind.dialect.name

    def _insert(self, table: Any) -> Any:
        module = postgresql if self._dialect == "postgresql" else sqlite
        return module.insert(table)

    async def bump_version(self, user_id: int) -> int:
        """Increment and return the user's memory version (first statement of a write).

        The row lock it takes serialises writers of one user until commit.
        """
        DB_QUERIES.labels("bump_version").inc()
        stmt = (
            self._insert(MemoryVersion)
            .values(user_id=user_id, version=1, updated_at=utcnow())
            .on_conflict_do_update(
                index_elements=[MemoryVersion.user_id],
                set_={"version": MemoryVersion.version + 1, "updated_at": utcnow()},
            )
            .returning(MemoryVersion.version)
        )
        try:
            version: int = (await self._session.execute(stmt)).scalar_one()
        except IntegrityError as exc:  # the foreign key to users: no such user
            raise UnknownUser(user_id) from exc
        return version

    async def insert_memory(
        self,
        user_id: int,
        chat_session_id: uuid.UUID | None,
        summary: str,
        intent: str | None,
        entities: Sequence[str],
        message_count: int,
    ) -> MemoryRecord:
        DB_QUERIES.labels("insert_memory").inc()
        row = ConversationMemory(
            user_id=user_id,
            chat_session_id=chat_session_id,
            summary=summary,
            intent=intent,
            entities=list(entities),
            message_count=message_count,
            created_at=utcnow(),
        )
        self._session.add(row)
        await self._session.flush()
        return _to_memory_record(row)

    async def upsert_preferences(self, user_id: int, preferences: Mapping[str, Any]) -> None:
        if not preferences:
            return
        DB_QUERIES.labels("upsert_preferences").inc()
        now = utcnow()
        stmt = self._insert(UserPreference).values(
            [
                {"user_id": user_id, "key": k, "value": v, "updated_at": now}
                for k, v in preferences.items()
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[UserPreference.user_id, UserPreference.key],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
        await self._session.execute(stmt)

    async def record_entities(self, user_id: int, entities: Sequence[EntityInput]) -> None:
        counts: dict[tuple[str, str], int] = {}
        for entity in entities:
            key = (entity.type, entity.name)
            counts[key] = counts.get(key, 0) + 1
        if not counts:
            return
        DB_QUERIES.labels("record_entities").inc()
        now = utcnow()
        stmt = self._insert(EntityMemory).values(
            [
                {
                    "user_id": user_id,
                    "entity_type": etype,
                    "name": name,
                    "mention_count": n,
                    "first_seen": now,
                    "last_seen": now,
                }
                for (etype, name), n in sorted(counts.items())
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[EntityMemory.user_id, EntityMemory.entity_type, EntityMemory.name],
            set_={
                "mention_count": EntityMemory.mention_count + stmt.excluded.mention_count,
                "last_seen": stmt.excluded.last_seen,
            },
        )
        await self._session.execute(stmt)

    async def delete_memory(self, user_id: int, memory_id: int) -> bool:
        """Delete one memory if and only if it belongs to ``user_id``."""
        DB_QUERIES.labels("delete_memory").inc()
        result = await self._session.execute(
            delete(ConversationMemory)
            .where(ConversationMemory.id == memory_id, ConversationMemory.user_id == user_id)
            .returning(ConversationMemory.id)
        )
        return result.first() is not None

    async def memory_exists(self, user_id: int, memory_id: int) -> bool:
        DB_QUERIES.labels("memory_exists").inc()
        stmt = select(ConversationMemory.id).where(
            ConversationMemory.id == memory_id, ConversationMemory.user_id == user_id
        )
        return (await self._session.execute(stmt)).first() is not None

    async def forget(self, user_id: int) -> None:
        """Remove every memory, preference and entity of the user (the version stays)."""
        DB_QUERIES.labels("forget").inc(3)
        for model in (ConversationMemory, UserPreference, EntityMemory):
            await self._session.execute(delete(model).where(model.user_id == user_id))

    async def recent_memories(self, user_id: int, limit: int) -> list[MemoryRecord]:
        DB_QUERIES.labels("recent_memories").inc()
        stmt = (
            select(ConversationMemory)
            .where(ConversationMemory.user_id == user_id)
            .order_by(ConversationMemory.created_at.desc(), ConversationMemory.id.desc())
            .limit(limit)
        )
        return [_to_memory_record(row) for row in (await self._session.scalars(stmt))]

    async def user_exists(self, user_id: int) -> bool:
        DB_QUERIES.labels("user_exists").inc()
        stmt = select(User.id).where(User.id == user_id)
        return (await self._session.execute(stmt)).first() is not None

    async def load_context(
        self, user_id: int, *, memories: int, preferences: int, entities: int
    ) -> MemoryContext:
        """The user's context at one consistent version; raises UnknownUser."""
        if self._dialect == "postgresql":
            return await self._load_context_pg(user_id, memories, preferences, entities)
        return await self._load_context_generic(user_id, memories, preferences, entities)

    async def _load_context_pg(
        self, user_id: int, memories: int, preferences: int, entities: int
    ) -> MemoryContext:
        DB_QUERIES.labels("load_context").inc()
        params = {
            "uid": user_id,
            "memories": memories,
            "preferences": preferences,
            "entities": entities,
        }
        row = (await self._session.execute(_PG_CONTEXT_SQL, params)).one()
        if not row.user_exists:
            raise UnknownUser(user_id)
        return MemoryContext(
            user_id=user_id,
            version=row.version,
            memories=tuple(
                MemoryRecord(
                    id=m[0],
                    summary=m[1],
                    intent=m[2],
                    entities=_names(user_id, m[3]),
                    message_count=m[4],
                    created_at=datetime.fromisoformat(m[5]),
                    chat_session_id=m[6],
                )
                for m in _json(row.memories)
            ),
            preferences=_portable_preferences(user_id, _json(row.preferences)),
            entities=tuple(
                EntityRecord(
                    type=e[0], name=e[1], mention_count=e[2], last_seen=datetime.fromisoformat(e[3])
                )
                for e in _json(row.entities)
            ),
        )

    async def _load_context_generic(
        self, user_id: int, memories: int, preferences: int, entities: int
    ) -> MemoryContext:
        DB_QUERIES.labels("load_context").inc(4)
        if not await self._session.scalar(select(func.count()).where(User.id == user_id)):
            raise UnknownUser(user_id)
        version = await self._session.scalar(
            select(MemoryVersion.version).where(MemoryVersion.user_id == user_id)
        )
        recent = await self.recent_memories(user_id, memories)
        pref_rows = await self._session.execute(
            select(UserPreference.key, UserPreference.value)
            .where(UserPreference.user_id == user_id)
            .order_by(UserPreference.updated_at.desc(), UserPreference.key)
            .limit(preferences)
        )
        entity_rows = await self._session.scalars(
            select(EntityMemory)
            .where(EntityMemory.user_id == user_id)
            .order_by(EntityMemory.mention_count.desc(), EntityMemory.last_seen.desc())
            .limit(entities)
        )
        return MemoryContext(
            user_id=user_id,
            version=version or 0,
            memories=tuple(recent),
            preferences=_portable_preferences(user_id, {k: v for k, v in pref_rows}),
            entities=tuple(
                EntityRecord(e.entity_type, e.name, e.mention_count, e.last_seen)
                for e in entity_rows
            ),
        )


def _json(value: Any) -> Any:
    """asyncpg hands json columns back as text; other drivers may already decode.

    orjson refuses numbers beyond a double (stored before the service refused them); the
    standard parser reads them, and the sanitising below drops what no tier can carry.
    """
    if not isinstance(value, str | bytes):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)


def _portable_preferences(user_id: int, preferences: Mapping[str, Any]) -> dict[str, Any]:
    """The preferences every tier can carry; the others are left out, counted and logged.

    A value stored before the service refused it (or by hand) must not fail every later
    load of the user's context. The log names the key, never the value.
    """
    kept: dict[str, Any] = {}
    for key, value in preferences.items():
        if is_portable(key) and is_portable(value):
            kept[key] = value
        else:
            STORED_VALUES_DROPPED.labels("preference").inc()
            log.warning(
                "user %s: stored preference %r cannot be carried by every tier; left out",
                user_id,
                key if is_portable(key) else "<unprintable key>",
            )
    return kept


def _names(user_id: int, names: Any) -> tuple[str, ...]:
    """A memory's entity names, without anything that is not portable text."""
    kept = tuple(n for n in names or () if isinstance(n, str) and is_portable(n))
    if len(kept) != len(names or ()):
        STORED_VALUES_DROPPED.labels("memory_entity").inc()
        log.warning("user %s: a stored memory lists entity names no tier can carry", user_id)
    return kept
