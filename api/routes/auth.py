"""Register and log in; both answer with a signed bearer token.

Both are abuse-limited (api/ratelimit.py): registrations per client address, failed
logins per account. A login of an account over its limit is refused before the password
is even checked, so guessing stops costing us argon2 time.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from memlayer.api.deps import Services, client_address
from memlayer.api.openapi import WITH_BODY, errors
from memlayer.api.ratelimit import Limit, account_key
from memlayer.api.schemas import Credentials, LoginIn, TokenOut
from memlayer.memory.errors import BadCredentials

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenOut,
    responses=errors(*WITH_BODY, 409, 429, 503),
)
async def register(body: Credentials, services: Services, request: Request) -> TokenOut:
    await services.limiter.hit(Limit.REGISTER, client_address(request))
    user = await services.users.register(body.email, body.password)
    return TokenOut(user_id=user.id, access_token=services.tokens.issue(user.id).access_token)


@router.post("/login", response_model=TokenOut, responses=errors(*WITH_BODY, 401, 429, 503))
async def login(body: LoginIn, services: Services) -> TokenOut:
    account = account_key(body.email)
    await services.limiter.check(Limit.LOGIN_FAILURES, account)
    try:
        user = await services.users.authenticate(body.email, body.password)
    except BadCredentials:
        await services.limiter.hit(Limit.LOGIN_FAILURES, account)
        raise
    return TokenOut(user_id=user.id, access_token=services.tokens.issue(user.id).access_token)
