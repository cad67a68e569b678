"""The only place that maps errors to HTTP: JSON ``{"detail": ...}``, no stack traces.

It maps memlayer's typed errors alone: the memory package translates every database
exception before it gets here (memory/dberrors.py), so no driver exception is named here.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from memlayer.api.auth import InvalidToken
from memlayer.api.ratelimit import RateLimited
from memlayer.memory.errors import (
    BadCredentials,
    EmailTaken,
    InvalidMemory,
    MemoryLayerError,
    MemoryNotFound,
    SessionNotFound,
    StoreUnavailable,
    UnknownUser,
)

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[Exception], int]] = [
    (InvalidToken, 401),
    (BadCredentials, 401),
    (EmailTaken, 409),
    (MemoryNotFound, 404),
    (SessionNotFound, 404),
    (UnknownUser, 404),
    (InvalidMemory, 422),
    (StoreUnavailable, 503),
    (MemoryLayerError, 500),
]


def status_for(exc: Exception) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def validation_detail(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors without ``input`` and ``ctx``: they echo what was sent (a
    password, 64 KiB of metadata) and need not be JSON."""
    return [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    async def known(_request: Request, exc: Exception) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": "5"}
        if status == 500:
            log.error("memory error without an HTTP meaning: %s", type(exc).__name__)
            return JSONResponse({"detail": "internal server error"}, status_code=500)
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    async def rate_limited(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RateLimited)
        return JSONResponse(
            {"detail": str(exc)},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    app.add_exception_handler(InvalidToken, known)
    app.add_exception_handler(MemoryLayerError, known)
    app.add_exception_handler(RateLimited, rate_limited)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)
