"""GET /memory/context's direct path answers exactly as the declared dependencies do.

The commonest request (a bearer token, no query string) skips FastAPI's dependency
solving (api/routes/memory.py); any other form goes through the declared route. Both
must give the same answers: the same body for the same caller, the same refusals.
"""

from __future__ import annotations

import httpx

from tests.support.api_client import bearer, register

CONTEXT = "/api/v1/memory/context"


async def test_the_direct_path_and_the_declared_route_give_the_same_context(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    headers = bearer(user["access_token"])
    for _ in range(3):  # a miss, a Redis read, then the near-cache
        direct = await client.get(CONTEXT, headers=headers)
    declared = await client.get(f"{CONTEXT}?limit=100", headers=headers)  # same, solved
    own = await client.get(f"{CONTEXT}?user_id={user['user_id']}", headers=headers)

    assert direct.status_code == declared.status_code == own.status_code == 200
    assert direct.headers["content-type"] == declared.headers["content-type"]
    assert direct.json() == declared.json() == own.json()
    assert direct.json()["source"] == "near"


async def test_refusals_are_the_declared_routes(client: httpx.AsyncClient) -> None:
    user = await register(client)
    other = await register(client)
    token = user["access_token"]
    cases = {
        "no credentials": ({}, "", 401),
        "another scheme": ({"Authorization": f"Basic {token}"}, "", 401),
        "a bearer without a token": ({"Authorization": "Bearer"}, "", 401),
        "a forged token": ({"Authorization": f"Bearer {token[:-4]}AAAA"}, "", 401),
        "someone else's id": (bearer(token), f"?user_id={other['user_id']}", 403),
        "a limit out of range": (bearer(token), "?limit=101", 422),
    }
    for what, (headers, query, status) in cases.items():
        response = await client.get(f"{CONTEXT}{query}", headers=headers)
        assert response.status_code == status, (what, response.text)
        assert "detail" in response.json(), what
