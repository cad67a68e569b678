// The words the pages show for the service's values, in one table: the chat page and the
// SRE page name a memory source, a team and an intent the same way.

export const SOURCE_LABELS = {
  near: "프로세스 캐시 (near)",
  cache: "캐시 (cache)",
  database: "데이터베이스 (database)",
  none: "없음 (none)",
};

export const TEAM_LABELS = { search_team: "검색팀", analysis_team: "분석팀", document_team: "문서팀" };

export const INTENT_LABELS = {
  market: "시세", loan: "대출", legal: "법률·세금", contract: "계약", risk: "위험",
  comprehensive: "종합", unclear: "일반", irrelevant: "부동산 외",
};

// A value the table does not know yet (a new source, team or intent) shows as itself.
export function label(table, key) {
  return table[key] ?? key;
}
