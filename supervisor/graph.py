"""The chat workflow: one compiled graph, and the entry point the API calls.

The graph is compiled once per process (in ``ChatWorkflow.__init__``); each turn brings
its own ``Context`` (the memory service, its emitter). Short-term state lives in the
checkpointer under ``thread_id`` = the session id, so a session's turns see each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from memlayer.memory.service import LongTermMemoryService
from memlayer.records import LoadSource
from memlayer.supervisor.events import ProgressEmitter
from memlayer.supervisor.nodes import execute, initialize, planning, response
from memlayer.supervisor.planner import Planner, RuleBasedPlanner
from memlayer.supervisor.responder import Responder, RuleBasedResponder
from memlayer.supervisor.state import Context, MainSupervisorState


def build_graph() -> StateGraph[MainSupervisorState, Context, Any, Any]:
    """initialize → planning → execute → response, uncompiled (to add a checkpointer)."""
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


class ChatWorkflow:
    """Runs chat turns through the compiled graph; one instance per process."""

    def __init__(
        self,
        memory: LongTermMemoryService,
        *,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        planner: Planner | None = None,
        responder: Responder | None = None,
    ) -> None:
        self._memory = memory
        self._planner: Planner = planner if planner is not None else RuleBasedPlanner()
        self._responder: Responder = responder if responder is not None else RuleBasedResponder()
        self._graph: CompiledStateGraph[MainSupervisorState, Context, Any, Any] = (
            build_graph().compile(
                checkpointer=checkpointer if checkpointer is not None else InMemorySaver()
            )
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
    ) -> TurnResult:
        """Answer one message of a session.

        ``user_id`` must come from the authenticated caller; it is written into the
        state on every turn (None included) so a checkpoint never supplies identity.
        """
        context = Context(
            memory=self._memory,
            emitter=emitter,
            planner=self._planner,
            responder=self._responder,
        )
        turn: MainSupervisorState = {
            "query": query,
            "session_id": session_id,
            "chat_session_id": chat_session_id,
            "user_id": user_id,
            "request_id": uuid.uuid4().hex,
        }
        state = await self._graph.ainvoke(turn, self._config(session_id), context=context)
        final = state["final_response"]
        return TurnResult(
            response=final["response"],
            intent=final["intent"],
            memory_count=len(state["loaded_memories"]),
            memory_source=LoadSource(state["memory_source"]),
            saved_memory_id=state["saved_memory_id"],
        )

    async def session_state(self, session_id: str) -> MainSupervisorState:
        """The session's state as the checkpointer last saved it (empty if none)."""
        snapshot = await self._graph.aget_state(self._config(session_id))
        return snapshot.values  # type: ignore[return-value]

    @staticmethod
    def _config(session_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": session_id}}
