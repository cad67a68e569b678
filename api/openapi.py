"""The error statuses each operation documents, all with one body schema (``ErrorOut``).

The served spec is the contract (a schemathesis run in the test suite holds the app to
it): an operation lists every status it can answer, and no other.
"""

from __future__ import annotations

from typing import Any

from memlayer.api.schemas import ErrorOut

_MEANING = {
    400: "The body could not be read as the declared content type.",
    401: "Missing, invalid or expired bearer token, or wrong email or password.",
    403: "The request names another user than the token's.",
    404: "No such resource of the caller's.",
    409: "Conflicts with what exists (an account with this email).",
    413: "The request body is larger than the limit (MEMLAYER_MAX_REQUEST_BODY_BYTES).",
    422: "The request is well-formed but invalid; ``detail`` says what and where.",
    429: "Over an abuse limit; ``Retry-After`` says when to try again.",
    503: "The database is busy or unavailable; retry after ``Retry-After`` seconds.",
}

_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
}

# Every operation: any request may carry an oversized body.
ALWAYS = (413,)
# Operations with a JSON body: an unparseable one is 400 or 422.
WITH_BODY = (400, 413, 422)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: these statuses, plus what every operation can answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, *ALWAYS}):
        entry: dict[str, Any] = {"model": ErrorOut, "description": _MEANING[status]}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out
