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


async def get_services(request: Request) -> AppServices:
    return request.app.state.services


Services = Annotated[AppServices, Depends(get_services)]


async def get_memory(services: Services) -> LongTermMemoryService:
    return services.memory


MemoryServiceDep = Annotated[LongTermMemoryService, Depends(get_memory)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def optional_user(services: Services, credentials: Credentials) -> int | None:
    """The caller's user id if a token was sent (it must then be valid), else None."""
    if credentials is None:
        return None
    return services.tokens.verify(credentials.credentials)


async def current_user(services: Services, credentials: Credentials) -> int:
    if credentials is None:
        raise InvalidToken("a bearer token is required")
    return services.tokens.verify(credentials.credentials)


OptionalUser = Annotated[int | None, Depends(optional_user)]
CurrentUser = Annotated[int, Depends(current_user)]


async def own_user_id(
    user: CurrentUser,
    user_id: Annotated[
        int | None,
        Query(description="Accepted for compatibility; must equal the caller's own id."),
    ] = None,
) -> int:
    """The seed's ``?user_id=`` is honoured only when it names the caller."""
    if user_id is not None and user_id != user:
        raise HTTPException(403, "user_id does not match the authenticated user")
    return user


OwnUser = Annotated[int, Depends(own_user_id)]
