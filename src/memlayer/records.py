"""Plain, immutable records that cross tiers (never ORM rows).

The cache tier encodes these, the memory tier produces them, and the API and the
workflow read them. They carry no behaviour beyond being cheap to build and compare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

JSONValue = Any  # a value that json.dumps accepts; validated at the service boundary


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """One conversation memory: the summary of a finished turn or session."""

    id: int
    summary: str
    intent: str | None
    entities: tuple[str, ...]
    message_count: int
    created_at: datetime
    chat_session_id: str | None = None


@dataclass(frozen=True, slots=True)
class EntityRecord:
    """An entity the user talked about, with how often and when last."""

    type: str
    name: str
    mention_count: int
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class EntityInput:
    """An entity mention to record (type and name)."""

    type: str
    name: str


@dataclass(frozen=True, slots=True)
class MemoryContext:
    """Everything the planning step reads about one user, at one memory version.

    ``memories`` are newest first. ``preferences`` must not be mutated by readers:
    the same object may be shared by concurrent loads.
    """

    user_id: int | None
    version: int
    memories: tuple[MemoryRecord, ...] = ()
    preferences: Mapping[str, JSONValue] = field(default_factory=dict)
    entities: tuple[EntityRecord, ...] = ()

    def limited(self, limit: int) -> MemoryContext:
        """The same context with at most ``limit`` memories (no copy when not needed)."""
        if limit >= len(self.memories):
            return self
        return MemoryContext(
            self.user_id, self.version, self.memories[:limit], self.preferences, self.entities
        )

    @classmethod
    def empty(cls, user_id: int | None, version: int = 0) -> MemoryContext:
        return cls(user_id=user_id, version=version)


@dataclass(frozen=True, slots=True)
class ReadFloor:
    """What a database load must at least see (docs/coherence.md, "Read replica").

    ``version``: a version known to be committed (a marker found in Redis, a write this
    process acknowledged); a replica's older answer is discarded and the primary read
    instead. ``primary``: read the primary only (this process's own write that Redis
    has not been told about).
    """

    version: int = 0
    primary: bool = False


ANY_SOURCE = ReadFloor()  # nothing known: any source will do


class LoadSource(StrEnum):
    """Where a memory context came from this turn."""

    NEAR = "near"  # this process's near-cache: no round trip (Redis vouched for it)
    CACHE = "cache"  # Redis
    DATABASE = "database"
    NONE = "none"  # anonymous user or memory skipped: neither tier was touched


class KeptEncoding(Protocol):
    """Somewhere a served value's encoding can be kept with it (a near-cache entry)."""

    def encoded(self, encode: Callable[[], bytes]) -> bytes:
        """``encode()``, made at most once for the value and then kept."""
        ...


@dataclass(frozen=True, slots=True)
class LoadResult:
    """A loaded context and the tier that served it.

    ``kept``: set when the context is exactly a near-cache entry's value, which can keep
    a reader's encoding of it (:meth:`encoded`); None otherwise.
    """

    context: MemoryContext
    source: LoadSource
    kept: KeptEncoding | None = None

    def encoded(self, encode: Callable[[LoadResult], bytes]) -> bytes:
        """``encode(self)``; for a near-cache hit made once per entry and kept with it.

        ``encode`` must depend on nothing but this result (the same context and source
        give the same bytes), as the API's JSON of a context does.
        """
        kept = self.kept
        if kept is None:
            return encode(self)
        return kept.encoded(lambda: encode(self))
