"""The workflow's state (one turn's, with the session's short-term state passed in) and
its run context.

State holds data, the context holds collaborators: the memory service, the emitter,
and the planner/responder arrive per run through ``Runtime[Context]``, never through
globals, so one compiled graph serves every request and every test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypedDict

from memlayer.memory.service import LongTermMemoryService
from memlayer.supervisor.events import ProgressEmitter
from memlayer.supervisor.planner import Planner
from memlayer.supervisor.responder import Responder

RECENT_TURNS_KEPT = 10


def keep_recent_turns(
    left: list[dict[str, Any]] | None, right: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Append this turn's record to the session's recent turns, keeping them bounded."""
    return ((left or []) + (right or []))[-RECENT_TURNS_KEPT:]


class MainSupervisorState(TypedDict, total=False):
    """One chat session's state; the seed's field names plus the memory fields.

    Values are plain JSON-like data (no records, no ORM rows) so that any serialiser (a
    checkpointer's, the API's JSON) can carry them.
    """

    # Core (the seed's)
    query: str
    session_id: str
    chat_session_id: str | None
    request_id: str | None
    turn_id: str  # idempotency key of the turn's memory save (a UUID, the client's)
    status: str  # "running" | "completed"
    current_phase: str
    error: str | None
    error_log: list[str]

    # Identity: set by the caller on every turn from the authenticated user, never from
    # stored state, so a session cannot carry one user's memory into another's turn.
    user_id: int | None

    # Planning
    intent: str
    planning_state: dict[str, Any] | None
    execution_plan: dict[str, Any] | None

    # Long-term memory read this turn
    loaded_memories: list[dict[str, Any]]
    user_preferences: dict[str, Any]
    memory_source: str  # "near" | "cache" | "database" | "none"
    memory_load_time: float | None  # seconds spent loading; None when skipped
    saved_memory_id: int | None

    # Execution
    active_teams: list[str]
    completed_teams: list[str]
    failed_teams: list[str]
    team_results: dict[str, Any]
    aggregated_results: dict[str, Any]

    # Response
    final_response: dict[str, Any] | None

    # Timing
    start_time: datetime | None
    end_time: datetime | None
    total_execution_time: float | None

    # Short-term, per session: rebuilt from Postgres by the caller before each turn
    turn_count: int
    recent_turns: Annotated[list[dict[str, Any]], keep_recent_turns]


@dataclass(frozen=True, slots=True)
class Context:
    """What a run needs besides its state; built per turn by ``ChatWorkflow``."""

    memory: LongTermMemoryService
    emitter: ProgressEmitter
    planner: Planner
    responder: Responder
