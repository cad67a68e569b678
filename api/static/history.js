// The sidebar of past conversations (signed-in users only).

import { api, handleAuthFailure } from "./api.js";
import { $, el, formatDate } from "./dom.js";
import { signedIn } from "./identity.js";

export async function refreshConversations() {
  const list = $("conversations");
  const note = $("history-note");
  if (!signedIn()) {
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
