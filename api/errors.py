"""The only place that maps errors to HTTP: JSON ``{"detail": ...}``, no stack traces."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from memlayer.api.auth import InvalidToken
from memlayer.memory.errors import (
    InvalidMemory,
    MemoryLayerError,
    MemoryNotFound,
    StoreUnavailable,
    UnknownUser,
)
from memlayer.memory.users import BadCredentials, EmailTaken

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[Exception], int]] = [
    (InvalidToken, 401),
    (BadCredentials, 401),
    (EmailTaken, 409),
    (MemoryNotFound, 404),
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


def install_error_handlers(app: FastAPI) -> None:
    async def known(_request: Request, exc: Exception) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": "5"}
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Sessions, history and accounts talk to Postgres directly: a pool that is
        # exhausted or a server that went away is "try again", not an internal error.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": "the database is busy or unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    app.add_exception_handler(InvalidToken, known)
    app.add_exception_handler(MemoryLayerError, known)
    for kind in (PoolTimeout, OperationalError, InterfaceError, ConnectionError):
        app.add_exception_handler(kind, database_unavailable)
    app.add_exception_handler(Exception, unexpected)
