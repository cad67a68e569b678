// Who the page speaks for: a signed-in user ({token, userId, email}), an anonymous visitor
// ({anonymous: true}) or nobody yet (null).
//
// Identity lives in sessionStorage and travels only in the Authorization header (and the
// socket's first frame), never in a URL.

const AUTH_KEY = "memlayer.auth";

let auth = null;

export function restoreIdentity() {
  try {
    auth = JSON.parse(sessionStorage.getItem(AUTH_KEY));
  } catch {
    auth = null;
  }
  return auth;
}

export function setIdentity(next) {
  auth = next;
  if (next) sessionStorage.setItem(AUTH_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(AUTH_KEY);
}

export const identity = () => auth;

export const token = () => auth?.token ?? null;

export const signedIn = () => Boolean(auth?.token);
