"""Stub teams (search, analysis, document) that the execute step runs.

The real teams call tools and models; these stand in with deterministic text built
from the query, what it mentions, and the memories loaded for the turn, so the graph,
its events and its use of memory can be tested end to end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TEAM_LABELS: dict[str, str] = {
    "search_team": "검색팀",
    "analysis_team": "분석팀",
    "document_team": "문서팀",
}

_INTENT_FOCUS: dict[str, str] = {
    "market": "시세 흐름",
    "loan": "대출 한도와 금리 조건",
    "legal": "세금·법률 쟁점",
    "contract": "계약 조건과 특약",
    "risk": "전세사기·깡통전세 위험 요소",
    "comprehensive": "시세·대출·법률·계약·위험 전반",
}


async def run_team(
    team: str,
    *,
    query: str,
    intent: str,
    planning_state: Mapping[str, Any],
    memories: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """One team's result: a status and a one-line summary."""
    names = [entity["name"] for entity in planning_state.get("entities", [])]
    subject = ", ".join(names) if names else f"'{query}'"
    focus = _INTENT_FOCUS.get(intent, "문의 내용")
    if team == "search_team":
        summary = f"{subject} 관련 {focus} 자료를 찾았습니다."
    elif team == "analysis_team":
        summary = f"{subject}의 {focus} 분석을 마쳤습니다"
        summary += f" (이전 상담 {len(memories)}건 참고)." if memories else "."
    elif team == "document_team":
        summary = f"{subject} 계약 시 확인할 서류와 특약 체크리스트를 준비했습니다."
    else:
        raise ValueError(f"unknown team {team!r}")
    return {"team": team, "status": "completed", "summary": f"{TEAM_LABELS[team]}: {summary}"}
