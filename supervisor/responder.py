"""The response step's "thinking": the answer text, built from team results and memory.

Like the planner, a rule-based responder stands behind a small protocol so a model can
replace it. It refers to the user's earlier conversation explicitly: the point of a
long-term memory is that the user can see it being used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from memlayer.supervisor.intents import Intent

INTENT_LABELS: dict[str, str] = {
    Intent.MARKET: "시세",
    Intent.LOAN: "대출",
    Intent.LEGAL: "세금·법률",
    Intent.CONTRACT: "계약",
    Intent.RISK: "위험 점검",
    Intent.COMPREHENSIVE: "종합",
}


class Responder(Protocol):
    async def respond(
        self,
        *,
        query: str,
        intent: str,
        planning_state: Mapping[str, Any],
        memories: Sequence[Mapping[str, Any]],
        preferences: Mapping[str, Any],
        team_results: Mapping[str, Mapping[str, Any]],
    ) -> str: ...


class RuleBasedResponder:
    """Templates in Korean; the earlier topic most related to this query comes first."""

    async def respond(
        self,
        *,
        query: str,
        intent: str,
        planning_state: Mapping[str, Any],
        memories: Sequence[Mapping[str, Any]],
        preferences: Mapping[str, Any],
        team_results: Mapping[str, Mapping[str, Any]],
    ) -> str:
        if intent == Intent.IRRELEVANT:
            return (
                "저는 부동산 상담 도우미라 그 질문에는 답변드리기 어려워요. "
                "시세, 대출, 세금·법률, 계약, 전세사기 위험 같은 부동산 질문을 해 주세요."
            )
        names = [entity["name"] for entity in planning_state.get("entities", [])]
        lines: list[str] = []
        mentioned: list[str] = []
        earlier = related_memory(memories, names, intent)
        if earlier is not None:
            topic = f"'{earlier['summary']}'{_with(earlier['summary'])}"
            lines.append(f"지난번에 문의하신 {topic} 관련해서 이어서 안내드릴게요.")
            mentioned = [n for n in earlier.get("entities", []) if n not in names]
            if mentioned:
                lines.append(
                    f"이전 상담에서 말씀하신 {', '.join(mentioned)} 정보도 함께 참고했어요."
                )

        if intent == Intent.UNCLEAR:
            lines.append(
                "어떤 점이 궁금하신지 조금 더 알려주시겠어요? 시세, 대출, 세금·법률, 계약, "
                "위험(깡통전세·사기) 중에서 골라 주시면 자세히 안내드릴게요."
            )
        else:
            lines.append(f"[{INTENT_LABELS.get(intent, intent)}] '{query}'에 대한 답변입니다.")
            lines.extend(f"- {result['summary']}" for result in team_results.values())

        region = preferences.get("region")
        if isinstance(region, str) and region not in (*names, *mentioned) and region not in query:
            lines.append(f"관심 지역으로 기억하고 있는 {region} 기준으로도 비교해 드릴 수 있어요.")
        return "\n".join(lines)


def related_memory(
    memories: Sequence[Mapping[str, Any]], names: Sequence[str], intent: str
) -> Mapping[str, Any] | None:
    """The earlier memory sharing most with this query; the newest wins a tie."""
    best: Mapping[str, Any] | None = None
    best_score = -1
    for memory in memories:  # newest first
        shared = len(set(memory.get("entities", ())) & set(names))
        score = 2 * shared + (1 if memory.get("intent") == intent else 0)
        if score > best_score:
            best, best_score = memory, score
    return best


def _with(word: str) -> str:
    """The particle "와"/"과" ("with"), chosen by whether the last syllable ends in a consonant."""
    last = word[-1:] if word else ""
    if "가" <= last <= "힣" and (ord(last) - ord("가")) % 28:
        return "과"
    return "와"
