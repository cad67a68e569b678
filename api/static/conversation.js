// The conversation: one question at a time, its progress steps as the socket reports them,
// and the answer.

import { handleAuthFailure } from "./api.js";
import { $, el } from "./dom.js";
import { refreshConversations } from "./history.js";
import { INTENT_LABELS, SOURCE_LABELS, TEAM_LABELS, label } from "./labels.js";
import { showLoadedMemory } from "./memory-panel.js";
import { Superseded, ensureSocket, showConnection } from "./socket.js";

let current = null; // the turn waiting for its answer

function setBusy(busy) {
  $("send").disabled = busy;
  $("chat-form").setAttribute("aria-busy", String(busy));
}

function scrollToEnd() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
  list.lastElementChild?.scrollIntoView({ block: "nearest" });
}

export function resetConversation() {
  $("messages").replaceChildren();
  current = null;
  setBusy(false);
}

function renderTurn(query) {
  const progress = el("ol", { className: "progress", attrs: { "aria-label": "진행 상황" } });
  const item = el("li", { className: "turn" }, [
    el("p", { className: "msg user" }, [el("span", { className: "visually-hidden", text: "나: " }), query]),
    progress,
  ]);
  $("messages").append(item);
  scrollToEnd();
  return { item, progress, steps: new Map(), planningAt: null, done: false };
}

function step(turn, key, text, kind = "running") {
  let node = turn.steps.get(key);
  if (!node) {
    node = el("li");
    turn.steps.set(key, node);
    turn.progress.append(node);
  }
  node.textContent = text;
  node.className = `step ${kind}`;
  node.dataset.step = key;
  scrollToEnd();
}

function finishTurn(turn) {
  turn.done = true;
  for (const node of turn.steps.values()) {
    if (node.classList.contains("running")) node.className = "step done";
  }
  if (current === turn) current = null;
  setBusy(false);
}

function failTurn(turn, message) {
  turn.item.append(el("p", { className: "msg error", attrs: { role: "alert" }, text: message }));
  finishTurn(turn);
  scrollToEnd();
}

async function send(query) {
  if (current) return; // one question at a time; the button says so too
  const turn = renderTurn(query);
  current = turn;
  setBusy(true);
  try {
    const ws = await ensureSocket();
    ws.send(JSON.stringify({ type: "query", query }));
  } catch (err) {
    if (err instanceof Superseded || handleAuthFailure(err)) return;
    failTurn(turn, "서버에 연결할 수 없습니다. 잠시 후 다시 보내 주세요.");
  }
}

// The socket closed while connected: a question still waiting will get no answer.
export function connectionLost() {
  if (current) failTurn(current, "답변을 받기 전에 연결이 끊겼습니다.");
}

export function handleEvent(event) {
  const turn = current;
  switch (event.type) {
    case "planning_start":
      if (!turn) return;
      turn.planningAt = event.timestamp;
      step(turn, "planning", "질문을 분석하고 계획하는 중…");
      break;
    case "memory_loaded":
      if (!turn) return;
      step(turn, "planning", "계획 완료", "done");
      step(
        turn,
        "memory",
        `기억 ${event.memory_count}개 불러옴 · 출처: ${label(SOURCE_LABELS, event.source)}`,
        "done",
      );
      showLoadedMemory(event, turn.planningAt);
      break;
    case "memory_unavailable":
      if (!turn) return;
      step(
        turn,
        `unavailable:${event.stage}`,
        event.stage === "save"
          ? "기억 저장소에 저장하지 못했습니다. 답변은 계속합니다."
          : "기억 저장소를 쓸 수 없어 기억 없이 답합니다.",
        "warning",
      );
      break;
    case "history_unavailable":
      if (!turn) return;
      step(turn, "history", "대화 기록에 저장하지 못했습니다.", "warning");
      break;
    case "team_start":
      if (!turn) return;
      step(turn, `team:${event.team}`, `${label(TEAM_LABELS, event.team)} 작업 중…`);
      break;
    case "team_complete":
      if (!turn) return;
      step(turn, `team:${event.team}`, `${label(TEAM_LABELS, event.team)} 완료`, "done");
      break;
    case "final_response":
      if (!turn) return;
      step(turn, "answer", "답변 완료", "done");
      turn.item.append(
        el("div", { className: "msg assistant" }, [
          el("span", { className: "visually-hidden", text: "상담사: " }),
          el("p", { className: "answer", text: event.response }),
          el("span", { className: "chip", text: label(INTENT_LABELS, event.intent) }),
        ]),
      );
      finishTurn(turn);
      scrollToEnd();
      refreshConversations();
      break;
    case "error":
      if (turn) failTurn(turn, event.message || "오류가 발생했습니다.");
      else showConnection(event.message || "오류가 발생했습니다.", "error");
      break;
    default:
      break;
  }
}

export function onComposerKey(event) {
  // Enter sends; Shift+Enter is a new line; an IME still composing Hangul keeps its Enter.
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  $("chat-form").requestSubmit();
}

export function onChatSubmit(event) {
  event.preventDefault();
  const input = $("chat-input");
  const query = input.value.trim();
  if (!query || current) return;
  input.value = "";
  send(query);
}
