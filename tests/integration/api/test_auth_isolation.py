"""Identity comes from a verified token only; a user reaches their own data only."""

from __future__ import annotations

import time

import jwt

from tests.support.api_client import bearer, chat_turn, register, start_session


async def test_register_login_and_their_errors(client):
    user = await register(client)
    login = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": "password-123"}
    )
    assert login.status_code == 200
    assert login.json()["user_id"] == user["user_id"] and login.json()["token_type"] == "bearer"
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": "wrong-password"}
    )
    assert wrong.status_code == 401 and wrong.json()["detail"]
    duplicate = await client.post(
        "/api/v1/auth/register", json={"email": user["email"], "password": "password-123"}
    )
    assert duplicate.status_code == 409 and "detail" in duplicate.json()
    malformed = await client.post("/api/v1/auth/register", json={"email": "nope", "password": "x"})
    assert malformed.status_code == 422 and "detail" in malformed.json()


async def test_other_users_data_is_unreachable(client, server):
    alice, bob = await register(client), await register(client)
    session = await start_session(client, alice["access_token"])
    await chat_turn(server, session, "송파구 아파트 시세 알려줘", token=alice["access_token"])
    alice_ctx = await client.get("/api/v1/memory/context", headers=bearer(alice["access_token"]))
    memory_id = alice_ctx.json()["memories"][0]["id"]
    bob_h = bearer(bob["access_token"])

    own = await client.get("/api/v1/memory/context", headers=bob_h)
    assert own.status_code == 200 and own.json()["memories"] == []
    assert own.json()["user_id"] == bob["user_id"]
    for path in ("/api/v1/memory/context", "/api/v1/chat/conversations"):
        spoofed = await client.get(path, params={"user_id": alice["user_id"]}, headers=bob_h)
        assert spoofed.status_code == 403, path
    assert (await client.delete(f"/api/v1/memory/{memory_id}", headers=bob_h)).status_code == 404
    assert (await client.get("/api/v1/chat/conversations", headers=bob_h)).json() == {
        "conversations": []
    }
    forged_start = await client.post(
        "/api/v1/chat/start", json={"user_id": alice["user_id"]}, headers=bob_h
    )
    assert forged_start.status_code == 403
    anon_claim = await client.post("/api/v1/chat/start", json={"user_id": alice["user_id"]})
    assert anon_claim.status_code == 403
    # Alice still has everything.
    again = await client.get("/api/v1/memory/context", headers=bearer(alice["access_token"]))
    assert [m["id"] for m in again.json()["memories"]] == [memory_id]


async def test_bad_tokens_are_401(client, api_settings):
    user = await register(client)
    secret = api_settings.jwt_secret.get_secret_value()
    now = int(time.time())
    expired = jwt.encode(
        {"sub": str(user["user_id"]), "iat": now - 7200, "exp": now - 3600, "typ": "access"},
        secret,
        algorithm="HS256",
    )
    forged = jwt.encode(
        {"sub": str(user["user_id"]), "iat": now, "exp": now + 3600, "typ": "access"},
        "someone-elses-secret-0000000000000000",
        algorithm="HS256",
    )
    for headers in ({}, bearer(expired), bearer(forged), bearer("garbage")):
        response = await client.get("/api/v1/memory/context", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["detail"]


async def test_owner_deletes_one_memory_and_forgets_everything(client, server):
    user = await register(client)
    headers = bearer(user["access_token"])
    session = await start_session(client, user["access_token"])
    await chat_turn(
        server, session, "마포구 아파트 시세", "마포구 전세 대출 금리", token=user["access_token"]
    )
    ctx = (await client.get("/api/v1/memory/context", headers=headers)).json()
    assert len(ctx["memories"]) == 2
    deleted = await client.delete(f"/api/v1/memory/{ctx['memories'][0]['id']}", headers=headers)
    assert deleted.status_code == 200 and deleted.json()["version"] > ctx["version"]
    after = (await client.get("/api/v1/memory/context", headers=headers)).json()
    assert [m["id"] for m in after["memories"]] == [ctx["memories"][1]["id"]]
    assert after["source"] == "cache", "the delete was written through"
    assert (await client.delete("/api/v1/memory", headers=headers)).status_code == 200
    empty = (await client.get("/api/v1/memory/context", headers=headers)).json()
    assert (empty["memories"], empty["preferences"], empty["entities"]) == ([], {}, [])
