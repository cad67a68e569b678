"""The chat workflow: one compiled graph, and the entry point the API calls.

The graph is compiled once per process (in ``ChatWorkflow.__init__``); each turn brings
its own ``Context`` (the memory service, its emitter). There is no checkpointer: a
session's short-term state (its turn count and recent turns) is rebuilt from Postgres by
the caller each turn and passed in, so no process holds per-session memory and the next
turn of a session may run on any process. (LangGraph's ``InMemorySaver`` kept every
checkpoint of every thread for the life of the process: 50-110 KB per turn, forever.)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from memlayer.memory.service import LongTermMemoryService
from memlayer.records import LoadSource
from memlayer.supervisor.events import ProgressEmitter
from memlayer.supervisor.nodes import execute, initialize, planning, response
from memlayer.supervisor.planner import Planner, RuleBasedPlanner
from memlayer.supervisor.responder import Responder, RuleBasedResponder
from memlayer.supervisor.state import RECENT_TURNS_KEPT, Context, MainSupervisorState


def build_graph() -> StateGraph[MainSupervisorState, Context, Any, Any]:
    """initialize → planning → execute → response, uncompiled."""
    builder = StateGraph(MainSupervisorState, context_schema=Context)
    builder.add_node("initialize", initialize)
    builder.add_node("planning", planning)
    builder.add_node("execute", execute)
    builder.add_node("response", response)
    builder.add_edge(START, "initialize")
    builder.add_edge("initialize", "planning")
    builder.add_edge("planning", "execute")
    builder.add_edge("execute", "response")
    builder.add_edge("response", END)
    return builder


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What the API needs of a finished turn."""

    response: str
    intent: str
    memory_count: int
    memory_source: LoadSource
    saved_memory_id: int | None
    turn: int = 1  # the turn's number in its session
    recent_turns: tuple[dict[str, Any], ...] = ()  # the session's turns, this one last


class ChatWorkflow:
    """Runs chat turns through the compiled graph; one instance per process."""

    def __init__(
        self,
        memory: LongTermMemoryService,
        *,
        planner: Planner | None = None,
        responder: Responder | None = None,
    ) -> None:
        self._memory = memory
        self._planner: Planner = planner if planner is not None else RuleBasedPlanner()
        self._responder: Responder = responder if responder is not None else RuleBasedResponder()
        self._graph: CompiledStateGraph[MainSupervisorState, Context, Any, Any] = (
            build_graph().compile()
        )

    @property
    def graph(self) -> CompiledStateGraph[MainSupervisorState, Context, Any, Any]:
        return self._graph

    async def run_turn(
        self,
        *,
        query: str,
        session_id: str,
        user_id: int | None,
        chat_session_id: str | None,
        emitter: ProgressEmitter,
        turn: int = 1,
        recent_turns: Sequence[Mapping[str, Any]] = (),
    ) -> TurnResult:
        """Answer one message of a session.

        ``user_id`` must come from the authenticated caller. ``turn`` (this turn's number
        in the session) and ``recent_turns`` (its earlier turns, oldest first) are the
        session's short-term state, which the caller keeps (in Postgres).
        """
        context = Context(
            memory=self._memory,
            emitter=emitter,
            planner=self._planner,
            responder=self._responder,
        )
        state_in: MainSupervisorState = {
            "query": query,
            "session_id": session_id,
            "chat_session_id": chat_session_id,
            "user_id": user_id,
            "request_id": uuid.uuid4().hex,
            "turn_count": turn,
            "recent_turns": [dict(t) for t in recent_turns][-RECENT_TURNS_KEPT:],
        }
        state = await self._graph.ainvoke(state_in, context=context)
        final = state["final_response"]
        return TurnResult(
            response=final["response"],
            intent=final["intent"],
            memory_count=len(state["loaded_memories"]),
            memory_source=LoadSource(state["memory_source"]),
            saved_memory_id=state["saved_memory_id"],
            turn=state["turn_count"],
            recent_turns=tuple(state["recent_turns"]),
        )
