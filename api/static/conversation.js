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

// A turn's id makes its memory save idempotent: a retry sends the same id and the server
// stores the memory once. crypto.randomUUID needs a secure context; plain http on another
// host has only getRandomValues.
function newTurnId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function renderTurn(query, turnId) {
  const progress = el("ol", { className: "progress", attrs: { "aria-label": "진행 상황" } });
  const item = el("li", { className: "turn" }, [
    el("p", { className: "msg user" }, [el("span", { className: "visually-hidden", text: "나: " }), query]),
    progress,
  ]);
  $("messages").append(item);
  scrollToEnd();
  return { item, progress, steps: new Map(), planningAt: null, done: false, query, turnId };
}

// Send the same question again with the same turn id (its memory is stored at most once).
function offerRetry(turn) {
  const button = el("button", { className: "secondary retry", text: "다시 보내기", attrs: { type: "button" } });
  button.addEventListener("click", () => {
    if (current) return;
    button.remove();
    send(turn.query, turn.turnId);
  });
  turn.item.append(button);
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
  offerRetry(turn);
  scrollToEnd();
}

async function send(query, turnId = newTurnId()) {
  if (current) return; // one question at a time; the button says so too
  const turn = renderTurn(query, turnId);
  current = turn;
  setBusy(true);
  try {
    const ws = await ensureSocket();
    ws.send(JSON.stringify({ type: "query", query, turn_id: turnId }));
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
      if (event.stage === "save" && event.outcome === "unknown") turn.saveUnknown = true;
      step(
        turn,
        `unavailable:${event.stage}`,
        event.stage !== "save"
          ? "기억 저장소를 쓸 수 없어 기억 없이 답합니다."
          : turn.saveUnknown
            ? "기억에 저장되었는지 확인하지 못했습니다. 다시 보내도 한 번만 저장됩니다."
            : "기억 저장소에 저장하지 못했습니다. 답변은 계속합니다.",
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
      if (turn.saveUnknown) offerRetry(turn);
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
