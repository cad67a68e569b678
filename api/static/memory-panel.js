// The memory panel: what this turn's planning read from long-term memory, and after a
// deletion what is stored now.

import { ApiError, api, handleAuthFailure } from "./api.js";
import { $, el, formatDate } from "./dom.js";
import { signedIn } from "./identity.js";
import { INTENT_LABELS, SOURCE_LABELS, label } from "./labels.js";

const ANONYMOUS_NOTE = "익명 대화는 기억을 읽지도 남기지도 않습니다.";
const NOTHING = { memories: [], preferences: {}, entities: [] };

let latestRequest = 0; // drops answers that arrive after a newer request

function setPanelHeading(title, count, source) {
  $("memory-title").textContent = title;
  $("memory-count").textContent = count === null ? "–" : String(count);
  const sourceNode = $("memory-source");
  sourceNode.textContent = source ? label(SOURCE_LABELS, source) : "–";
  if (source) sourceNode.dataset.source = source;
  else delete sourceNode.dataset.source;
}

export function resetMemoryPanel() {
  latestRequest += 1;
  setPanelHeading("이번 턴에 불러온 기억", null, null);
  renderMemory(NOTHING);
  $("memory-note").textContent = signedIn()
    ? "질문을 보내면 계획 단계가 읽은 기억이 여기에 보입니다."
    : ANONYMOUS_NOTE;
}

function renderMemory({ memories, preferences, entities }) {
  const list = $("memory-list");
  list.replaceChildren(
    ...memories.map((memory) => {
      const meta = [label(INTENT_LABELS, memory.intent), formatDate(memory.created_at)]
        .filter(Boolean)
        .join(" · ");
      const forget = el("button", {
        className: "link danger-text",
        text: "잊기",
        attrs: { type: "button", "aria-label": `“${memory.summary}” 기억 잊기` },
      });
      forget.addEventListener("click", () => forgetOne(memory.id));
      return el("li", { className: "memory-item", attrs: { "data-memory-id": String(memory.id) } }, [
        el("p", { className: "summary", text: memory.summary }),
        el("p", { className: "meta", text: meta }),
        el(
          "ul",
          { className: "tags", attrs: { "aria-label": "언급한 대상" } },
          (memory.entities ?? []).map((name) => el("li", { className: "chip", text: name })),
        ),
        forget,
      ]);
    }),
  );
  $("memory-empty").hidden = memories.length > 0;

  const prefs = Object.entries(preferences ?? {});
  $("memory-preferences").replaceChildren(
    ...prefs.map(([key, value]) =>
      el("div", {}, [
        el("dt", { text: key }),
        el("dd", { text: typeof value === "string" ? value : JSON.stringify(value) }),
      ]),
    ),
  );
  $("preferences-empty").hidden = prefs.length > 0;

  $("memory-entities").replaceChildren(
    ...(entities ?? []).map((entity) =>
      el("li", { className: "chip", text: `${entity.name} · ${entity.type} ×${entity.mention_count}` }),
    ),
  );
  $("entities-empty").hidden = (entities ?? []).length > 0;
}

// memory_loaded says how many memories planning read and from where; the memories
// themselves come from /memory/context. A memory saved after this turn's planning began
// (planningAt) was not loaded by it, so the panel keeps only what existed by then.
export async function showLoadedMemory(event, planningAt) {
  const request = ++latestRequest;
  setPanelHeading("이번 턴에 불러온 기억", event.memory_count, event.source);
  if (!signedIn()) {
    renderMemory(NOTHING);
    $("memory-note").textContent = ANONYMOUS_NOTE;
    return;
  }
  if (event.source === "none") {
    renderMemory(NOTHING);
    $("memory-note").textContent = "이 질문에는 기억이 필요 없어 읽지 않았습니다.";
    return;
  }
  $("memory-note").textContent = "불러온 기억을 가져오는 중…";
  try {
    const context = await api(`/memory/context?limit=${event.memory_count + 1}`);
    if (request !== latestRequest) return;
    const cutoff = Date.parse(planningAt ?? event.timestamp);
    const memories = context.memories
      .filter((m) => Number.isNaN(cutoff) || Date.parse(m.created_at) < cutoff)
      .slice(0, event.memory_count);
    renderMemory({ ...context, memories });
    $("memory-note").textContent =
      event.memory_count === 0 ? "아직 저장된 기억이 없습니다." : "";
  } catch (err) {
    if (request !== latestRequest || handleAuthFailure(err)) return;
    $("memory-note").textContent = "기억을 가져오지 못했습니다.";
  }
}

// After a deletion the panel shows what is stored now, straight from the service.
async function showStoredMemory(note) {
  const request = ++latestRequest;
  try {
    const context = await api("/memory/context");
    if (request !== latestRequest) return;
    setPanelHeading("지금 저장된 기억", context.memories.length, context.source);
    renderMemory(context);
    $("memory-note").textContent = note;
  } catch (err) {
    if (!handleAuthFailure(err)) $("memory-note").textContent = "기억을 가져오지 못했습니다.";
  }
}

async function forgetOne(memoryId) {
  try {
    await api(`/memory/${memoryId}`, { method: "DELETE" });
    await showStoredMemory("기억 하나를 지웠습니다.");
  } catch (err) {
    if (handleAuthFailure(err)) return;
    $("memory-note").textContent =
      err instanceof ApiError && err.status === 404 ? "이미 지워진 기억입니다." : "기억을 지우지 못했습니다.";
  }
}

export async function forgetAll() {
  if (!window.confirm("저장된 모든 기억을 지울까요? 되돌릴 수 없습니다.")) return;
  try {
    await api("/memory", { method: "DELETE" });
    await showStoredMemory("모든 기억을 지웠습니다.");
  } catch (err) {
    if (!handleAuthFailure(err)) $("memory-note").textContent = "기억을 지우지 못했습니다.";
  }
}
