// The service's API as the pages call it: JSON over HTTP, and the refusals of both channels
// (HTTP and the chat socket) as errors.

import { token } from "./identity.js";

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// The chat socket closed before it was ready, with the server's close code and reason.
export class SocketRefused extends Error {
  constructor(code, reason) {
    super(reason || `socket closed (${code})`);
    this.code = code;
  }
}

function detailText(data) {
  const detail = data?.detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg ?? String(d)).join("; ");
  return typeof detail === "string" ? detail : "";
}

export async function api(path, { method = "GET", body, withToken = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (withToken && token()) headers.Authorization = `Bearer ${token()}`;
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

let onTokenExpired = () => {};

export function whenTokenExpires(handler) {
  onTokenExpired = handler;
}

// A signed-in call refused with 401 (a socket with 4401) means the token expired: the
// handler the page registered takes the user back to the sign-in form. True if it did.
export function handleAuthFailure(error) {
  const refused =
    (error instanceof ApiError && error.status === 401) ||
    (error instanceof SocketRefused && error.code === 4401);
  if (refused && token()) {
    onTokenExpired();
    return true;
  }
  return false;
}
