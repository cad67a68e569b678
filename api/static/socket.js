// The chat socket: one session at a time, opened on demand and authenticated by its first
// frame.
//
// The socket path carries the chat session id, which is not an identity: a signed-in
// session's socket is authenticated by its first frame, {"type": "auth", "token": ...}
// (a browser cannot set headers on a WebSocket).

import { API, SocketRefused, api, handleAuthFailure } from "./api.js";
import { $ } from "./dom.js";
import { token } from "./identity.js";

// The socket of a session the page already left: its late answers are not ours.
export class Superseded extends Error {}

const state = {
  sessionId: null,
  ws: null, // the connected socket
  opening: null, // a socket still waiting for its "connected" event
  generation: 0, // bumped when the user leaves a session; late events of older sockets are dropped
  connecting: null, // the promise of the socket being opened, so sends wait for it
};

let handlers = { onEvent: () => {}, onLost: () => {} };

// onEvent(event) gets every event after "connected"; onLost() runs when a connected socket
// closes.
export function listen({ onEvent, onLost }) {
  handlers = { onEvent, onLost };
}

export function showConnection(text, kind = "") {
  const node = $("connection");
  node.textContent = text;
  node.dataset.kind = kind;
}

// Close the socket and forget the session: the next connect starts a new one.
export function leaveSession() {
  state.generation += 1; // every socket and attempt of the old generation is now ignored
  for (const ws of [state.ws, state.opening]) {
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "client closed");
  }
  state.ws = null;
  state.opening = null;
  state.connecting = null;
  state.sessionId = null;
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
    const bearer = token();
    ws.addEventListener("open", () => {
      if (bearer) ws.send(JSON.stringify({ type: "auth", token: bearer }));
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
        showConnection(`연결됨 · 세션 …${state.sessionId.slice(-8)}`, "ok");
        resolve(ws);
        return;
      }
      handlers.onEvent(event);
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
      showConnection("연결이 끊겼습니다. 질문을 보내면 다시 연결합니다.", "error");
      handlers.onLost();
    });
  });
}

// An open socket, opening (and if needed starting) the session first. Concurrent callers
// share one attempt, so a fast Enter right after "새 대화" waits instead of racing.
export function ensureSocket() {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) return Promise.resolve(state.ws);
  if (state.connecting) return state.connecting;
  const generation = state.generation;
  showConnection("연결 중…");
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
  const settled = () => {
    if (state.connecting === attempt) state.connecting = null;
  };
  attempt.then(settled, settled);
  return attempt;
}

// Connect now (entering the chat, a new conversation); a failure is shown, not thrown.
export async function connect() {
  await ensureSocket().catch((err) => {
    if (err instanceof Superseded || handleAuthFailure(err)) return;
    showConnection("연결하지 못했습니다. 질문을 보내면 다시 시도합니다.", "error");
  });
}
