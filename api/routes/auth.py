"""Register and log in; both answer with a signed bearer token."""

from __future__ import annotations

from fastapi import APIRouter, status

from memlayer.api.deps import Services
from memlayer.api.schemas import Credentials, TokenOut

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenOut,
    responses={409: {"description": "email already registered"}},
)
async def register(body: Credentials, services: Services) -> TokenOut:
    user = await services.users.register(body.email, body.password)
    return TokenOut(user_id=user.id, access_token=services.tokens.issue(user.id).access_token)


@router.post("/login", response_model=TokenOut, responses={401: {"description": "bad credentials"}})
async def login(body: Credentials, services: Services) -> TokenOut:
    user = await services.users.authenticate(body.email, body.password)
    return TokenOut(user_id=user.id, access_token=services.tokens.issue(user.id).access_token)
