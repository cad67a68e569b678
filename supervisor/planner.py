"""The planning step's "thinking": what the query is about and what to do for it.

No LLM is reachable, so a rule-based planner stands behind a small ``Planner``
protocol; a model-backed planner can replace it without touching the graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from memlayer.supervisor.extraction import Extraction, extract
from memlayer.supervisor.intents import MEMORY_LIMITS, Intent, classify_intent, teams_for


@dataclass(frozen=True, slots=True)
class Plan:
    """A decided turn: intent, the teams to run, and how much memory to read."""

    intent: Intent
    topics: tuple[Intent, ...] = ()
    teams: tuple[str, ...] = ()
    memory_limit: int = 0  # 0: do not touch memory at all (neither cache nor database)
    keywords: tuple[str, ...] = ()
    extraction: Extraction = field(default_factory=Extraction)

    def as_state(self) -> dict[str, Any]:
        """Plain data for the turn's state."""
        return {
            "intent": self.intent.value,
            "topics": [topic.value for topic in self.topics],
            "keywords": list(self.keywords),
            "memory_limit": self.memory_limit,
            "entities": [{"type": e.type, "name": e.name} for e in self.extraction.entities],
            "preferences": self.extraction.preferences,
        }


class Planner(Protocol):
    async def plan(self, query: str) -> Plan: ...


class RuleBasedPlanner:
    """Keyword rules (``intents``) and extraction rules (``extraction``)."""

    async def plan(self, query: str) -> Plan:
        match = classify_intent(query)
        if match.intent is Intent.IRRELEVANT:
            # Nothing of an off-topic turn is worth remembering.
            return Plan(Intent.IRRELEVANT)
        return Plan(
            intent=match.intent,
            topics=match.topics,
            teams=teams_for(match.topics),
            memory_limit=MEMORY_LIMITS[match.intent],
            keywords=match.keywords,
            extraction=extract(query),
        )
