// The chat page: sign in (or stay anonymous), talk over the WebSocket, and show what the
// planning step read from long-term memory on each turn.
//
// Identity lives in sessionStorage and travels only in the Authorization header, never in
// a URL. The socket path carries the chat session id, which is not an identity: a signed-in
// session's socket is authenticated by its first frame, {"type": "auth", "token": ...}
// (a browser cannot set headers on a WebSocket).

const API = "/api/v1";
const AUTH_KEY = "memlayer.auth";

const SOURCE_LABELS = { cache: "캐시 (cache)", database: "데이터베이스 (database)", none: "없음 (none)" };
const TEAM_LABELS = { search_team: "검색팀", analysis_team: "분석팀", document_team: "문서팀" };
const INTENT_LABELS = {
  market: "시세", loan: "대출", legal: "법률·세금", contract: "계약", risk: "위험",
  comprehensive: "종합", unclear: "일반", irrelevant: "부동산 외",
};
const dateFormat = new Intl.DateTimeFormat("ko-KR", { dateStyle: "short", timeStyle: "short" });

const $ = (id) => document.getElementById(id);

const state = {
  auth: null, // {token, userId, email} or {anonymous: true}
  sessionId: null,
  ws: null, // the connected socket
  opening: null, // a socket still waiting for its "connected" event
  generation: 0, // bumped when the user leaves a session; late events of older sockets are dropped
  connecting: null, // the promise of the socket being opened, so sends wait for it
  turn: null, // the turn waiting for its answer
  panelRequest: 0, // drops memory-panel answers that arrive after a newer request
};

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

class Superseded extends Error {}

class SocketRefused extends Error {
  constructor(code, reason) {
    super(reason || `socket closed (${code})`);
    this.code = code;
  }
}

// ---- small DOM helpers -------------------------------------------------------------

function el(tag, { className, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function formatDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : dateFormat.format(date);
}

// ---- HTTP ----------------------------------------------------------------------------

function detailText(data) {
  const detail = data?.detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg ?? String(d)).join("; ");
  return typeof detail === "string" ? detail : "";
}

async function api(path, { method = "GET", body, withToken = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (withToken && state.auth?.token) headers.Authorization = `Bearer ${state.auth.token}`;
  const response = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const raw = await response.text();
  let data = null;
  if (raw) {
    try {
      data = JSON.parse(raw);
    } catch {
      data = { detail: raw };
    }
  }
  if (!response.ok) throw new ApiError(response.status, detailText(data) || response.statusText);
  return data;
}

// A signed-in call refused with 401 (a socket with 4401) means the token expired: back to
// the sign-in form.
function handleAuthFailure(error) {
  const refused =
    (error instanceof ApiError && error.status === 401) ||
    (error instanceof SocketRefused && error.code === 4401);
  if (refused && state.auth?.token) {
    signOut("로그인이 만료되었습니다. 다시 로그인하세요.");
    return true;
  }
  return false;
}

// ---- identity ------------------------------------------------------------------------

function loadAuth() {
  try {
    return JSON.parse(sessionStorage.getItem(AUTH_KEY));
  } catch {
    return null;
  }
}

function saveAuth(auth) {
  state.auth = auth;
  if (auth) sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
  else sessionStorage.removeItem(AUTH_KEY);
}

const AUTH_MESSAGES = {
  401: "이메일 또는 비밀번호가 맞지 않습니다.",
  409: "이미 가입된 이메일입니다. 로그인하세요.",
  422: "이메일 형식과 비밀번호(8자 이상)를 확인하세요.",
};

async function onAuthSubmit(event) {
  event.preventDefault();
  const action = event.submitter?.value === "register" ? "register" : "login";
  const email = $("auth-email").value.trim();
  const password = $("auth-password").value;
  const error = $("auth-error");
  error.textContent = "";
  if (!$("auth-email").checkValidity() || !email) {
    error.textContent = "올바른 이메일 주소를 입력하세요.";
    $("auth-email").focus();
    return;
  }
  if (password.length < 8) {
    error.textContent = "비밀번호는 8자 이상이어야 합니다.";
    $("auth-password").focus();
    return;
  }
  const buttons = $("auth-form").querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  try {
    const data = await api(`/auth/${action}`, {
      method: "POST",
      body: { email, password },
      withToken: false,
    });
    saveAuth({ token: data.access_token, userId: data.user_id, email });
    $("auth-form").reset();
    await enterChat();
  } catch (err) {
    error.textContent =
      err instanceof ApiError ? AUTH_MESSAGES[err.status] ?? err.message : "서버에 연결할 수 없습니다.";
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

function signOut(message = "") {
  closeSocket();
  saveAuth(null);
  state.sessionId = null;
  showAuth();
  $("auth-error").textContent = message;
}

// ---- views ---------------------------------------------------------------------------

function showAuth() {
  $("chat-view").hidden = true;
  $("identity").hidden = true;
  $("auth-view").hidden = false;
  $("auth-email").focus();
}

async function enterChat() {
  const signedIn = Boolean(state.auth?.token);
  $("auth-view").hidden = true;
  $("chat-view").hidden = false;
  $("identity").hidden = false;
  $("identity-label").textContent = signedIn ? state.auth.email : "익명 사용자";
  $("sign-out").textContent = signedIn ? "로그아웃" : "로그인";
  $("forget-all").hidden = !signedIn;
  resetConversationView();
  $("chat-input").focus();
  refreshConversations();
  await ensureSocket().catch(reportConnectFailure);
}

function resetConversationView() {
  $("messages").replaceChildren();
  state.turn = null;
  setBusy(false);
  resetMemoryPanel();
}

// ---- the chat socket -----------------------------------------------------------------

function setConnection(text, kind = "") {
  const node = $("connection");
  node.textContent = text;
  node.dataset.kind = kind;
}

function closeSocket() {
  state.generation += 1; // every socket and attempt of the old generation is now ignored
  for (const ws of [state.ws, state.opening]) {
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "client closed");
  }
  state.ws = null;
  state.opening = null;
  state.connecting = null;
}

async function startSession(generation) {
  const data = await api("/chat/start", { method: "POST" });
  if (generation !== state.generation) throw new Superseded();
  state.sessionId = data.session_id;
}

function openSocket(generation) {
  return new Promise((resolve, reject) => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}${API}/chat/ws/${encodeURIComponent(state.sessionId)}`;
    const ws = new WebSocket(url);
    state.opening = ws;
    let connected = false;
    const token = state.auth?.token;
    ws.addEventListener("open", () => {
      if (token) ws.send(JSON.stringify({ type: "auth", token }));
    });
    ws.addEventListener("message", (message) => {
      if (generation !== state.generation) return; // a socket we already left
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.type === "connected") {
        connected = true;
        state.ws = ws;
        state.opening = null;
        setConnection(`연결됨 · 세션 …${state.sessionId.slice(-8)}`, "ok");
        resolve(ws);
        return;
      }
      onEvent(event);
    });
    ws.addEventListener("close", (close) => {
      if (generation !== state.generation) {
        reject(new Superseded());
        return;
      }
      if (!connected) {
        state.opening = null;
        reject(new SocketRefused(close.code, close.reason));
        return;
      }
      state.ws = null;
      setConnection("연결이 끊겼습니다. 질문을 보내면 다시 연결합니다.", "error");
      if (state.turn) failTurn(state.turn, "답변을 받기 전에 연결이 끊겼습니다.");
    });
  });
}

// An open socket, opening (and if needed starting) the session first. Concurrent callers
// share one attempt, so a fast Enter right after "새 대화" waits instead of racing.
function ensureSocket() {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) return Promise.resolve(state.ws);
  if (state.connecting) return state.connecting;
  const generation = state.generation;
  setConnection("연결 중…");
  const attempt = (async () => {
    if (!state.sessionId) await startSession(generation);
    try {
      return await openSocket(generation);
    } catch (err) {
      if (!(err instanceof SocketRefused) || err.code !== 4004) throw err;
      await startSession(generation); // the session expired: start a fresh one, once
      return await openSocket(generation);
    }
  })();
  state.connecting = attempt;
  attempt.then(
    () => {
      if (state.connecting === attempt) state.connecting = null;
    },
    () => {
      if (state.connecting === attempt) state.connecting = null;
    },
  );
  return attempt;
}

function reportConnectFailure(err) {
  if (err instanceof Superseded || handleAuthFailure(err)) return;
  setConnection("연결하지 못했습니다. 질문을 보내면 다시 시도합니다.", "error");
}

async function newChat() {
  closeSocket();
  state.sessionId = null;
  resetConversationView();
  $("chat-input").focus();
  refreshConversations();
  await ensureSocket().catch(reportConnectFailure);
}

// ---- turns ---------------------------------------------------------------------------

function setBusy(busy) {
  $("send").disabled = busy;
  $("chat-form").setAttribute("aria-busy", String(busy));
}

function scrollToEnd() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
  list.lastElementChild?.scrollIntoView({ block: "nearest" });
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
  if (state.turn === turn) state.turn = null;
  setBusy(false);
}

function failTurn(turn, message) {
  turn.item.append(el("p", { className: "msg error", attrs: { role: "alert" }, text: message }));
  finishTurn(turn);
  scrollToEnd();
}

async function send(query) {
  if (state.turn) return; // one question at a time; the button says so too
  const turn = renderTurn(query);
  state.turn = turn;
  setBusy(true);
  try {
    const ws = await ensureSocket();
    ws.send(JSON.stringify({ type: "query", query }));
  } catch (err) {
    if (err instanceof Superseded || handleAuthFailure(err)) return;
    failTurn(turn, "서버에 연결할 수 없습니다. 잠시 후 다시 보내 주세요.");
  }
}

function onEvent(event) {
  const turn = state.turn;
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
        `기억 ${event.memory_count}개 불러옴 · 출처: ${SOURCE_LABELS[event.source] ?? event.source}`,
        "done",
      );
      showLoadedMemory(event, turn);
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
      step(turn, `team:${event.team}`, `${TEAM_LABELS[event.team] ?? event.team} 작업 중…`);
      break;
    case "team_complete":
      if (!turn) return;
      step(turn, `team:${event.team}`, `${TEAM_LABELS[event.team] ?? event.team} 완료`, "done");
      break;
    case "final_response":
      if (!turn) return;
      step(turn, "answer", "답변 완료", "done");
      turn.item.append(
        el("div", { className: "msg assistant" }, [
          el("span", { className: "visually-hidden", text: "상담사: " }),
          el("p", { className: "answer", text: event.response }),
          el("span", { className: "chip", text: INTENT_LABELS[event.intent] ?? event.intent }),
        ]),
      );
      finishTurn(turn);
      scrollToEnd();
      refreshConversations();
      break;
    case "error":
      if (turn) failTurn(turn, event.message || "오류가 발생했습니다.");
      else setConnection(event.message || "오류가 발생했습니다.", "error");
      break;
    default:
      break;
  }
}

function onComposerKey(event) {
  // Enter sends; Shift+Enter is a new line; an IME still composing Hangul keeps its Enter.
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  $("chat-form").requestSubmit();
}

function onChatSubmit(event) {
  event.preventDefault();
  const input = $("chat-input");
  const query = input.value.trim();
  if (!query || state.turn) return;
  input.value = "";
  send(query);
}

// ---- the memory panel ----------------------------------------------------------------

function setPanelHeading(title, count, source) {
  $("memory-title").textContent = title;
  $("memory-count").textContent = count === null ? "–" : String(count);
  const sourceNode = $("memory-source");
  sourceNode.textContent = source ? SOURCE_LABELS[source] ?? source : "–";
  if (source) sourceNode.dataset.source = source;
  else delete sourceNode.dataset.source;
}

function resetMemoryPanel() {
  state.panelRequest += 1;
  setPanelHeading("이번 턴에 불러온 기억", null, null);
  renderMemory({ memories: [], preferences: {}, entities: [] });
  $("memory-note").textContent = state.auth?.token
    ? "질문을 보내면 계획 단계가 읽은 기억이 여기에 보입니다."
    : "익명 대화는 기억을 읽지도 남기지도 않습니다.";
}

function renderMemory({ memories, preferences, entities }) {
  const list = $("memory-list");
  list.replaceChildren(
    ...memories.map((memory) => {
      const meta = [INTENT_LABELS[memory.intent] ?? memory.intent, formatDate(memory.created_at)]
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
// was not loaded by it, so the panel keeps only what existed when planning started.
async function showLoadedMemory(event, turn) {
  const request = ++state.panelRequest;
  setPanelHeading("이번 턴에 불러온 기억", event.memory_count, event.source);
  if (!state.auth?.token) {
    renderMemory({ memories: [], preferences: {}, entities: [] });
    $("memory-note").textContent = "익명 대화는 기억을 읽지도 남기지도 않습니다.";
    return;
  }
  if (event.source === "none") {
    renderMemory({ memories: [], preferences: {}, entities: [] });
    $("memory-note").textContent = "이 질문에는 기억이 필요 없어 읽지 않았습니다.";
    return;
  }
  $("memory-note").textContent = "불러온 기억을 가져오는 중…";
  try {
    const context = await api(`/memory/context?limit=${event.memory_count + 1}`);
    if (request !== state.panelRequest) return;
    const cutoff = Date.parse(turn.planningAt ?? event.timestamp);
    const memories = context.memories
      .filter((m) => Number.isNaN(cutoff) || Date.parse(m.created_at) < cutoff)
      .slice(0, event.memory_count);
    renderMemory({ ...context, memories });
    $("memory-note").textContent =
      event.memory_count === 0 ? "아직 저장된 기억이 없습니다." : "";
  } catch (err) {
    if (request !== state.panelRequest || handleAuthFailure(err)) return;
    $("memory-note").textContent = "기억을 가져오지 못했습니다.";
  }
}

// After a deletion the panel shows what is stored now, straight from the service.
async function showStoredMemory(note) {
  const request = ++state.panelRequest;
  try {
    const context = await api("/memory/context");
    if (request !== state.panelRequest) return;
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

async function forgetAll() {
  if (!window.confirm("저장된 모든 기억을 지울까요? 되돌릴 수 없습니다.")) return;
  try {
    await api("/memory", { method: "DELETE" });
    await showStoredMemory("모든 기억을 지웠습니다.");
  } catch (err) {
    if (!handleAuthFailure(err)) $("memory-note").textContent = "기억을 지우지 못했습니다.";
  }
}

// ---- conversation history ------------------------------------------------------------

async function refreshConversations() {
  const list = $("conversations");
  const note = $("history-note");
  if (!state.auth?.token) {
    list.replaceChildren();
    note.textContent = "익명 대화는 기록되지 않습니다. 로그인하면 지난 대화가 여기에 보입니다.";
    return;
  }
  try {
    const data = await api("/chat/conversations?limit=20");
    // The server orders them by latest activity, newest first.
    const conversations = data.conversations;
    note.textContent = conversations.length ? "" : "아직 대화가 없습니다.";
    list.replaceChildren(
      ...conversations.map((c) =>
        el("li", { className: "conversation" }, [
          el("p", { className: "title", text: c.title }),
          el("p", {
            className: "meta",
            // A conversation is listed from its first question; its messages are stored
            // when the turn ends, so a count of 0 means the first turn is still running.
            text: `${formatDate(c.created_at)} · ${c.message_count ? `메시지 ${c.message_count}개` : "진행 중"}`,
          }),
          el("p", { className: "last", text: c.last_message ?? "" }),
        ]),
      ),
    );
  } catch (err) {
    if (!handleAuthFailure(err)) note.textContent = "지난 대화를 불러오지 못했습니다.";
  }
}

// ---- start ---------------------------------------------------------------------------

function main() {
  $("auth-form").addEventListener("submit", onAuthSubmit);
  $("anonymous").addEventListener("click", () => {
    saveAuth({ anonymous: true });
    enterChat();
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("new-chat").addEventListener("click", newChat);
  $("chat-form").addEventListener("submit", onChatSubmit);
  $("chat-input").addEventListener("keydown", onComposerKey);
  $("forget-all").addEventListener("click", forgetAll);

  state.auth = loadAuth();
  if (state.auth?.token || state.auth?.anonymous) enterChat();
  else showAuth();
}

main();
