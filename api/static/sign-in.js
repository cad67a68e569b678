// The sign-in form: log in or register, then hand over to the chat.

import { ApiError, api } from "./api.js";
import { $ } from "./dom.js";
import { setIdentity } from "./identity.js";

const AUTH_MESSAGES = {
  401: "이메일 또는 비밀번호가 맞지 않습니다.",
  409: "이미 가입된 이메일입니다. 로그인하세요.",
  422: "이메일 형식과 비밀번호(8자 이상)를 확인하세요.",
};

// The form's submit handler; onSignedIn() runs once the token is stored.
export async function submitSignIn(event, onSignedIn) {
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
    setIdentity({ token: data.access_token, userId: data.user_id, email });
    $("auth-form").reset();
    await onSignedIn();
  } catch (err) {
    error.textContent =
      err instanceof ApiError ? AUTH_MESSAGES[err.status] ?? err.message : "서버에 연결할 수 없습니다.";
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}
