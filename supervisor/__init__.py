"""memlayer.supervisor: the LangGraph chat workflow that reads and writes memory."""

from memlayer.supervisor.events import ListEmitter, NullEmitter, ProgressEmitter, make_event
from memlayer.supervisor.graph import ChatWorkflow, TurnResult, build_graph
from memlayer.supervisor.intents import Intent, classify_intent
from memlayer.supervisor.planner import Plan, Planner, RuleBasedPlanner
from memlayer.supervisor.responder import Responder, RuleBasedResponder
from memlayer.supervisor.state import Context, MainSupervisorState

__all__ = [
    "ChatWorkflow",
    "Context",
    "Intent",
    "ListEmitter",
    "MainSupervisorState",
    "NullEmitter",
    "Plan",
    "Planner",
    "ProgressEmitter",
    "Responder",
    "RuleBasedPlanner",
    "RuleBasedResponder",
    "TurnResult",
    "build_graph",
    "classify_intent",
    "make_event",
]
