"""Progress events: how a running turn tells the client what it is doing.

Nodes never print or hold a socket. They hand plain dicts to ONE emitter that arrives
in the run's context, so the same graph streams to a WebSocket in the API and into a
list in tests and the CLI.

Event types and their fields (besides ``type`` and ``timestamp``, ISO 8601 UTC):

- ``planning_start``      ``query``
- ``memory_loaded``       ``user_id``, ``memory_count``, ``source`` (near|cache|database|none)
- ``memory_unavailable``  ``stage`` (load|save), ``message``, ``error`` (exception class);
                          for save, ``outcome``: ``not_saved``, or ``unknown`` (the
                          connection failed during COMMIT: retrying the turn with the
                          same ``turn_id`` is safe, it is stored at most once)
- ``team_start``          ``team``
- ``team_complete``       ``team``
- ``final_response``      ``response``, ``intent``, ``turn`` (its number in the session),
                          ``recent_turns`` (turns in the session's short-term state),
                          ``turn_id`` (the turn's idempotency key)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

Event = dict[str, Any]


class ProgressEmitter(Protocol):
    """Where a turn's events go. Implementations must not raise: a client that went
    away must not fail the turn (and so skip saving its memory)."""

    async def emit(self, event: Event) -> None: ...


def make_event(type_: str, **fields: Any) -> Event:
    """An event with its type and the time it happened."""
    return {"type": type_, "timestamp": datetime.now(UTC).isoformat(), **fields}


class ListEmitter:
    """Collects events in order; for tests and the command line."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def of_type(self, type_: str) -> list[Event]:
        return [event for event in self.events if event["type"] == type_]


class NullEmitter:
    """Discards events, for callers that only want the answer."""

    async def emit(self, event: Event) -> None:
        return None
