// The chat page: sign in (or stay anonymous), talk over the WebSocket, and show what the
// planning step read from long-term memory on each turn. This entry module switches the
// views and wires the page's controls to the modules that do the work:
//
//   api.js           the service's HTTP API and the refusals of both channels
//   identity.js      who the page speaks for (sessionStorage)
//   sign-in.js       the sign-in form
//   socket.js        the chat socket (authenticated by its first frame)
//   conversation.js  questions, progress steps and answers
//   memory-panel.js  what planning read from memory; forgetting
//   history.js       past conversations
//   labels.js, dom.js  the words shown for values (shared with ops.js); DOM helpers

import { whenTokenExpires } from "./api.js";
import {
  connectionLost,
  handleEvent,
  onChatSubmit,
  onComposerKey,
  resetConversation,
} from "./conversation.js";
import { $ } from "./dom.js";
import { refreshConversations } from "./history.js";
import { identity, restoreIdentity, setIdentity, signedIn } from "./identity.js";
import { forgetAll, resetMemoryPanel } from "./memory-panel.js";
import { submitSignIn } from "./sign-in.js";
import { connect, leaveSession, listen } from "./socket.js";

function showAuth() {
  $("chat-view").hidden = true;
  $("identity").hidden = true;
  $("auth-view").hidden = false;
  $("auth-email").focus();
}

function signOut(message = "") {
  leaveSession();
  setIdentity(null);
  showAuth();
  $("auth-error").textContent = message;
}

// An empty conversation and memory panel, the past conversations refreshed, the socket
// opening.
async function startConversation() {
  resetConversation();
  resetMemoryPanel();
  $("chat-input").focus();
  refreshConversations();
  await connect();
}

async function enterChat() {
  $("auth-view").hidden = true;
  $("chat-view").hidden = false;
  $("identity").hidden = false;
  $("identity-label").textContent = signedIn() ? identity().email : "익명 사용자";
  $("sign-out").textContent = signedIn() ? "로그아웃" : "로그인";
  $("forget-all").hidden = !signedIn();
  await startConversation();
}

async function newChat() {
  leaveSession();
  await startConversation();
}

function main() {
  whenTokenExpires(() => signOut("로그인이 만료되었습니다. 다시 로그인하세요."));
  listen({ onEvent: handleEvent, onLost: connectionLost });

  $("auth-form").addEventListener("submit", (event) => submitSignIn(event, enterChat));
  $("anonymous").addEventListener("click", () => {
    setIdentity({ anonymous: true });
    enterChat();
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("new-chat").addEventListener("click", newChat);
  $("chat-form").addEventListener("submit", onChatSubmit);
  $("chat-input").addEventListener("keydown", onComposerKey);
  $("forget-all").addEventListener("click", forgetAll);

  const restored = restoreIdentity();
  if (restored?.token || restored?.anonymous) enterChat();
  else showAuth();
}

main();
