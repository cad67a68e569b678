"""LongTermMemoryService: the only door to memory.

Postgres is the source of truth; the cache tier (``ContextCache``) sits in front of
reads and is written through after every commit. Anonymous callers (``user_id=None``)
never touch either tier.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from memlayer.cache import CachePort, NullContextCache
from memlayer.memory.db import Database
from memlayer.memory.dberrors import translate, translated
from memlayer.memory.errors import (
    InvalidMemory,
    MemoryLayerError,
    MemoryNotFound,
    StoreUnavailable,
)
from memlayer.memory.metrics import MEMORY_WRITES
from memlayer.memory.repository import MemoryRepository
from memlayer.memory.values import UnportableValue, check_portable
from memlayer.records import (
    EntityInput,
    LoadResult,
    LoadSource,
    MemoryContext,
    MemoryRecord,
)
from memlayer.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Written(Generic[T]):
    """A committed memory write: what its work returned, and the user's new version."""

    result: T
    version: int


MAX_ENTITY_TYPE = 50
MAX_ENTITY_NAME = 200
MAX_INTENT = 50


class LongTermMemoryService:
    def __init__(
        self, database: Database, settings: Settings, cache: CachePort | None = None
    ) -> None:
        self._db = database
        self._settings = settings
        self._cache: CachePort = cache if cache is not None else NullContextCache()

    @property
    def cache(self) -> CachePort:
        return self._cache

    # --- reads ------------------------------------------------------------------------

    async def load_context(self, user_id: int | None, limit: int | None = None) -> LoadResult:
        """The planning step's read: one cache round trip when warm."""
        limit = self._clamp_limit(limit)
        if user_id is None:
            return LoadResult(MemoryContext.empty(None), LoadSource.NONE)
        _check_user_id(user_id)
        result = await self._cache.load(user_id, lambda: self._load_from_database(user_id))
        if limit < len(result.context.memories):
            return LoadResult(result.context.limited(limit), result.source)
        return result

    async def load_recent_memories(self, user_id: int | None, limit: int) -> list[MemoryRecord]:
        """Newest first; served from the cached context when it is warm."""
        result = await self.load_context(user_id, limit)
        return list(result.context.memories)

    async def warm_cache(self, user_ids: Sequence[int]) -> int:
        """Load these users' contexts into the cache; returns how many came from Postgres."""
        for user_id in user_ids:
            _check_user_id(user_id)
        return await self._cache.warm(user_ids, lambda uid: lambda: self._load_from_database(uid))

    async def _load_from_database(self, user_id: int) -> MemoryContext:
        s = self._settings
        with translated("loading memory"):
            async with self._db.fill_sessionmaker() as session, session.begin():
                return await MemoryRepository(session).load_context(
                    user_id,
                    memories=s.memory_context_size,
                    preferences=s.context_max_preferences,
                    entities=s.context_max_entities,
                )

    # --- writes -----------------------------------------------------------------------

    async def save_conversation_memory(
        self,
        user_id: int | None,
        chat_session_id: str | uuid.UUID | None,
        summary: str,
        intent: str | None = None,
        entities: Sequence[str] = (),
        message_count: int = 0,
    ) -> MemoryRecord | None:
        """Store one conversation memory; None for anonymous callers."""
        return await self.record_turn(
            user_id,
            chat_session_id=chat_session_id,
            summary=summary,
            intent=intent,
            memory_entities=entities,
            message_count=message_count,
        )

    async def record_turn(
        self,
        user_id: int | None,
        *,
        chat_session_id: str | uuid.UUID | None,
        summary: str,
        intent: str | None = None,
        memory_entities: Sequence[str] = (),
        message_count: int = 0,
        preferences: Mapping[str, Any] | None = None,
        entities: Sequence[EntityInput] = (),
    ) -> MemoryRecord | None:
        """What the response step saves for a turn, in ONE transaction and ONE version."""
        if user_id is None:
            return None
        summary = self._check_summary(summary)
        session_uuid = _parse_chat_session_id(chat_session_id)
        if intent is not None and (not isinstance(intent, str) or len(intent) > MAX_INTENT):
            raise InvalidMemory(f"intent must be a string of at most {MAX_INTENT} characters")
        if not isinstance(message_count, int) or message_count < 0:
            raise InvalidMemory("message_count must be a non-negative integer")
        names = tuple(_check_name(n, "entity", MAX_ENTITY_NAME) for n in memory_entities)
        prefs = self._check_preferences(preferences or {})
        ents = _check_entities(entities)

        async def work(repo: MemoryRepository) -> MemoryRecord:
            record = await repo.insert_memory(
                user_id, session_uuid, summary, intent, names, message_count
            )
            await repo.upsert_preferences(user_id, prefs)
            await repo.record_entities(user_id, ents)
            return record

        return (await self._write(user_id, work)).result

    async def upsert_preferences(self, user_id: int | None, preferences: Mapping[str, Any]) -> int:
        """Set preference values by key; returns the new memory version (0 if anonymous)."""
        if user_id is None:
            return 0
        prefs = self._check_preferences(preferences)
        written = await self._write(user_id, lambda repo: repo.upsert_preferences(user_id, prefs))
        return written.version

    async def record_entities(self, user_id: int | None, entities: Sequence[EntityInput]) -> int:
        """Count mentions (up) and move last-seen; returns the new memory version."""
        if user_id is None:
            return 0
        ents = _check_entities(entities)
        written = await self._write(user_id, lambda repo: repo.record_entities(user_id, ents))
        return written.version

    async def delete_memory(self, user_id: int | None, memory_id: int) -> int:
        """Delete one of the user's own memories; MemoryNotFound for anyone else's."""
        if user_id is None:
            raise MemoryNotFound(memory_id)
        if not isinstance(memory_id, int) or not 0 < memory_id < 2**63:
            raise MemoryNotFound(memory_id)

        async def work(repo: MemoryRepository) -> None:
            if not await repo.delete_memory(user_id, memory_id):
                raise MemoryNotFound(memory_id)

        return (await self._write(user_id, work)).version

    async def forget_user(self, user_id: int | None) -> int:
        """Remove every memory, preference and entity; the cache gets an empty context."""
        if user_id is None:
            return 0
        return (await self._write(user_id, lambda repo: repo.forget(user_id))).version

    async def _write(
        self, user_id: int, work: Callable[[MemoryRepository], Awaitable[T]]
    ) -> Written[T]:
        """Bump the version, do the work, read the new context, commit, write through.

        The context is read inside the same transaction, after the version row lock, so
        it is exactly the state at the new version. Redis is touched only after commit.
        """
        _check_user_id(user_id)
        s = self._settings
        committing = False
        try:
            async with self._db.sessionmaker() as session:
                transaction = await session.begin()
                repo = MemoryRepository(session)
                version = await repo.bump_version(user_id)
                result = await work(repo)
                context = await repo.load_context(
                    user_id,
                    memories=s.memory_context_size,
                    preferences=s.context_max_preferences,
                    entities=s.context_max_entities,
                )
                committing = True
                await transaction.commit()
        except Exception as exc:
            error = translate(exc, "the memory write")
            if isinstance(error, StoreUnavailable):
                MEMORY_WRITES.labels("error").inc()
                if committing:
                    # The connection failed during COMMIT: the write may or may not be in
                    # Postgres. Never let the cache keep an older context than Postgres
                    # might now hold. (A write that failed before COMMIT rolled back:
                    # Redis is not touched at all.)
                    await self._cache.invalidate(user_id)
            elif isinstance(error, MemoryLayerError):
                # The caller's mistake (unknown user, someone else's memory, a value the
                # database refused): not a failure of the store, so it must not feed the
                # write-failure alert.
                MEMORY_WRITES.labels("rejected").inc()
            else:
                MEMORY_WRITES.labels("error").inc()
            if error is exc:
                raise
            raise error from exc
        except BaseException:
            MEMORY_WRITES.labels("error").inc()
            raise
        MEMORY_WRITES.labels("ok").inc()
        await self._cache.write_through(context)
        return Written(result, version)

    # --- validation -------------------------------------------------------------------

    def _clamp_limit(self, limit: int | None) -> int:
        if limit is None:
            limit = self._settings.memory_default_limit
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise InvalidMemory(f"limit must be an integer, got {limit!r}")
        if limit < 0:
            raise InvalidMemory(f"limit must not be negative, got {limit}")
        return min(limit, self._settings.memory_context_size)

    def _check_summary(self, summary: str) -> str:
        if not isinstance(summary, str) or not summary.strip():
            raise InvalidMemory("summary must be a non-empty string")
        if len(summary) > self._settings.summary_max_length:
            raise InvalidMemory(
                f"summary is {len(summary)} characters; the maximum is "
                f"{self._settings.summary_max_length} (MEMLAYER_SUMMARY_MAX_LENGTH)"
            )
        _check_portable(summary, "summary")
        return summary

    def _check_preferences(self, preferences: Mapping[str, Any]) -> dict[str, Any]:
        s = self._settings
        if not isinstance(preferences, Mapping):
            raise InvalidMemory("preferences must be a mapping of key to JSON value")
        checked: dict[str, Any] = {}
        for key, value in preferences.items():
            _check_name(key, "preference key", s.preference_key_max_length)
            _check_portable(value, f"preference {key!r}")
            try:
                # Strict JSON: no NaN/Infinity, no datetimes or other Python-only types.
                encoded = json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
            except (TypeError, ValueError) as exc:
                raise InvalidMemory(
                    f"preference {key!r} is not JSON-serialisable: {type(value).__name__}"
                ) from exc
            if len(encoded) > s.preference_value_max_bytes:
                raise InvalidMemory(
                    f"preference {key!r} is {len(encoded)} bytes encoded; the maximum is "
                    f"{s.preference_value_max_bytes} (MEMLAYER_PREFERENCE_VALUE_MAX_BYTES)"
                )
            checked[key] = json.loads(encoded)  # stored exactly as JSON will read it back
        return checked


def _check_portable(value: Any, what: str) -> None:
    """Refuse what the cache, the API's JSON or the turn state could not carry."""
    try:
        check_portable(value)
    except UnportableValue as exc:
        raise InvalidMemory(f"{what} cannot be stored: it holds {exc}") from exc


def _check_user_id(user_id: Any) -> None:
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
        raise InvalidMemory(f"user_id must be a positive integer, got {user_id!r}")


def _check_name(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidMemory(f"{what} must be a non-empty string")
    if len(value) > max_length:
        raise InvalidMemory(f"{what} {value[:20]!r}... is longer than {max_length} characters")
    _check_portable(value, what)
    return value


def _check_entities(entities: Sequence[EntityInput]) -> list[EntityInput]:
    checked = []
    for entity in entities:
        if not isinstance(entity, EntityInput):
            raise InvalidMemory(f"entities must be EntityInput records, got {entity!r}")
        _check_name(entity.type, "entity type", MAX_ENTITY_TYPE)
        _check_name(entity.name, "entity name", MAX_ENTITY_NAME)
        checked.append(entity)
    return checked


def _parse_chat_session_id(value: str | uuid.UUID | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise InvalidMemory(f"chat_session_id must be a UUID, got {value!r}") from exc
