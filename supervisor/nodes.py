"""The four nodes of a chat turn: initialize → planning → execute → response.

Each is a plain async function of ``(state, runtime)`` that returns only the fields it
changes. Collaborators come from ``runtime.context``. Memory is best effort: a
``MemoryLayerError`` on load or save becomes "no memory this turn" and an event, never a
failed turn.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from langgraph.runtime import Runtime

from memlayer.memory.errors import MemoryLayerError
from memlayer.records import EntityInput, LoadSource, MemoryRecord
from memlayer.supervisor.events import make_event
from memlayer.supervisor.extraction import turn_summary
from memlayer.supervisor.intents import Intent
from memlayer.supervisor.state import RECENT_TURNS_KEPT, Context, MainSupervisorState
from memlayer.supervisor.teams import run_team

log = logging.getLogger(__name__)

# One question and one answer: what a turn's conversation memory summarises.
MESSAGES_PER_TURN = 2

Update = dict[str, Any]


async def initialize(state: MainSupervisorState, runtime: Runtime[Context]) -> Update:
    """Set every per-turn field; the caller's ``user_id`` and the session's short-term
    state (``turn_count``, ``recent_turns``) arrive with the input and are kept."""
    return {
        "status": "running",
        "current_phase": "initialize",
        "error": None,
        "error_log": [],
        "intent": "",
        "planning_state": None,
        "execution_plan": None,
        "loaded_memories": [],
        "user_preferences": {},
        "memory_source": LoadSource.NONE.value,
        "memory_load_time": None,
        "saved_memory_id": None,
        "active_teams": [],
        "completed_teams": [],
        "failed_teams": [],
        "team_results": {},
        "aggregated_results": {},
        "final_response": None,
        "start_time": datetime.now(UTC),
        "end_time": None,
        "total_execution_time": None,
        "turn_count": state.get("turn_count") or 1,
    }


async def planning(state: MainSupervisorState, runtime: Runtime[Context]) -> Update:
    """Decide the intent, then read long-term memory if the turn deserves it.

    Anonymous users and irrelevant queries touch neither the cache nor the database.
    """
    ctx = runtime.context
    query = state["query"]
    user_id = state.get("user_id")
    await ctx.emitter.emit(make_event("planning_start", query=query))
    plan = await ctx.planner.plan(query)

    memories: list[dict[str, Any]] = []
    preferences: dict[str, Any] = {}
    source = LoadSource.NONE
    load_time: float | None = None
    errors: list[str] = []
    if user_id is not None and plan.memory_limit > 0:
        started = time.perf_counter()
        try:
            result = await ctx.memory.load_context(user_id, plan.memory_limit)
        except MemoryLayerError as exc:
            log.warning("memory load failed for user %s: %s", user_id, exc)
            errors.append(f"memory load: {type(exc).__name__}")
            await ctx.emitter.emit(_memory_unavailable("load", exc))
        else:
            memories = [_memory_state(record) for record in result.context.memories]
            preferences = dict(result.context.preferences)
            source = result.source
        load_time = time.perf_counter() - started

    await ctx.emitter.emit(
        make_event(
            "memory_loaded", user_id=user_id, memory_count=len(memories), source=source.value
        )
    )
    return {
        "current_phase": "planning",
        "intent": plan.intent.value,
        "planning_state": plan.as_state(),
        "execution_plan": {"teams": list(plan.teams)},
        "active_teams": list(plan.teams),
        "loaded_memories": memories,
        "user_preferences": preferences,
        "memory_source": source.value,
        "memory_load_time": load_time,
        "error_log": errors,
    }


async def execute(state: MainSupervisorState, runtime: Runtime[Context]) -> Update:
    """Run the planned teams one after another, so their events come in plan order."""
    emitter = runtime.context.emitter
    results: dict[str, Any] = {}
    for team in state.get("active_teams", []):
        await emitter.emit(make_event("team_start", team=team))
        results[team] = await run_team(
            team,
            query=state["query"],
            intent=state["intent"],
            planning_state=state.get("planning_state") or {},
            memories=state.get("loaded_memories", []),
        )
        await emitter.emit(make_event("team_complete", team=team))
    return {
        "current_phase": "execute",
        "team_results": results,
        "completed_teams": list(results),
        "aggregated_results": {"summaries": [r["summary"] for r in results.values()]},
    }


async def response(state: MainSupervisorState, runtime: Runtime[Context]) -> Update:
    """Answer, then remember the turn (signed-in users, relevant queries) in ONE write."""
    ctx = runtime.context
    query = state["query"]
    intent = state["intent"]
    user_id = state.get("user_id")
    planning_state = state.get("planning_state") or {}
    text = await ctx.responder.respond(
        query=query,
        intent=intent,
        planning_state=planning_state,
        memories=state.get("loaded_memories", []),
        preferences=state.get("user_preferences", {}),
        team_results=state.get("team_results", {}),
    )

    saved: MemoryRecord | None = None
    errors = list(state.get("error_log", []))
    if user_id is not None and intent != Intent.IRRELEVANT:
        entities = [EntityInput(e["type"], e["name"]) for e in planning_state.get("entities", [])]
        try:
            saved = await ctx.memory.record_turn(
                user_id,
                chat_session_id=state.get("chat_session_id"),
                summary=turn_summary(query),
                intent=intent,
                memory_entities=[entity.name for entity in entities],
                message_count=MESSAGES_PER_TURN,
                preferences=planning_state.get("preferences") or None,
                entities=entities,
            )
        except MemoryLayerError as exc:
            log.warning("memory save failed for user %s: %s", user_id, exc)
            errors.append(f"memory save: {type(exc).__name__}")
            await ctx.emitter.emit(_memory_unavailable("save", exc))

    final = {
        "response": text,
        "intent": intent,
        # The session's short-term state as this turn saw it: its number in the session
        # and how many turns (this one included) the state holds.
        "turn": state.get("turn_count", 1),
        "recent_turns": min(len(state.get("recent_turns", [])) + 1, RECENT_TURNS_KEPT),
    }
    await ctx.emitter.emit(make_event("final_response", **final))
    end = datetime.now(UTC)
    start = state.get("start_time")
    return {
        "current_phase": "response",
        "status": "completed",
        "final_response": final,
        "saved_memory_id": saved.id if saved is not None else None,
        "error_log": errors,
        "end_time": end,
        "total_execution_time": (end - start).total_seconds() if start else None,
        "recent_turns": [{"query": query, "response": text}],
    }


def _memory_state(record: MemoryRecord) -> dict[str, Any]:
    """A memory as plain data: the state holds JSON-like values only, never records."""
    return {
        "id": record.id,
        "summary": record.summary,
        "intent": record.intent,
        "entities": list(record.entities),
        "created_at": record.created_at.isoformat(),
        "chat_session_id": str(record.chat_session_id) if record.chat_session_id else None,
    }


def _memory_unavailable(stage: str, exc: MemoryLayerError) -> dict[str, Any]:
    # The exception text can name hosts and SQL; the client gets a plain sentence.
    message = (
        "이전 대화 기억을 불러오지 못해 이번 답변은 기억 없이 드려요."
        if stage == "load"
        else "이번 대화를 기억에 저장하지 못했어요."
    )
    return make_event("memory_unavailable", stage=stage, message=message, error=type(exc).__name__)
