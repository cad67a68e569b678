"""FastAPI dependencies as Annotated aliases. Identity comes from the bearer token only.

Every dependency is ``async def``: FastAPI runs plain ``def`` dependencies in a thread
pool, which on the hot path costs far more than the work they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from memlayer.api.auth import InvalidToken
from memlayer.api.services import AppServices
from memlayer.memory.service import LongTermMemoryService

_bearer = HTTPBearer(auto_error=False, description="Access token from /auth/login")


def client_address(request: Request) -> str:
    """The client's address for per-address limits (behind a proxy, uvicorn's
    ``--proxy-headers`` has already put the forwarded address here)."""
    return request.client.host if request.client is not None else "unknown"


def _services(request: Request) -> AppServices:
    """The app's services: Starlette's ``app.state`` is untyped by design, so name the type once."""
    services: AppServices = request.app.state.services
    return services


async def get_services(request: Request) -> AppServices:
    return _services(request)


Services = Annotated[AppServices, Depends(get_services)]


# The dependencies below take the Request directly instead of depending on ``Services``:
# each node of FastAPI's dependency graph costs time on every request, and these sit on
# the hot path (a warm GET /memory/context is mostly dependency solving otherwise).


async def get_memory(request: Request) -> LongTermMemoryService:
    return _services(request).memory


MemoryServiceDep = Annotated[LongTermMemoryService, Depends(get_memory)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _verified(request: Request, credentials: HTTPAuthorizationCredentials | None) -> int:
    if credentials is None:
        raise InvalidToken("a bearer token is required")
    return _services(request).tokens.verify(credentials.credentials)


async def optional_user(request: Request, credentials: Credentials) -> int | None:
    """The caller's user id if a token was sent (it must then be valid), else None."""
    return None if credentials is None else _verified(request, credentials)


async def current_user(request: Request, credentials: Credentials) -> int:
    return _verified(request, credentials)


OptionalUser = Annotated[int | None, Depends(optional_user)]
CurrentUser = Annotated[int, Depends(current_user)]


async def own_user_id(
    request: Request,
    credentials: Credentials,
    user_id: Annotated[
        int | None,
        Query(description="Accepted for compatibility; must equal the caller's own id."),
    ] = None,
) -> int:
    """The caller's id; the seed's ``?user_id=`` is honoured only when it names the caller."""
    user = _verified(request, credentials)
    if user_id is not None and user_id != user:
        raise HTTPException(403, "user_id does not match the authenticated user")
    return user


OwnUser = Annotated[int, Depends(own_user_id)]
