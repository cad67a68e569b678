"""A session's short-term state lives in Postgres: its next turn may land on any process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from memlayer.settings import Settings
from tests.support.api_client import bearer, chat_turn, event, register, start_session
from tests.support.server_process import ServerProcess


@pytest.fixture
async def other_process(api_settings: Settings) -> AsyncIterator[ServerProcess]:
    other = await ServerProcess(api_settings).start()
    yield other
    await other.stop()


async def test_consecutive_turns_on_two_processes_share_the_session_state(
    client, server, other_process
):
    user = await register(client)
    token = user["access_token"]
    session = await start_session(client, token)

    [first] = await chat_turn(server, session, "강남구 아파트 시세 알려줘", token=token)
    [second] = await chat_turn(other_process.ws_url, session, "대출 한도는요?", token=token)
    [third] = await chat_turn(server, session, "전세 계약 주의사항", token=token)

    finals = [event(turn, "final_response") for turn in (first, second, third)]
    assert [f["turn"] for f in finals] == [1, 2, 3]
    assert [f["recent_turns"] for f in finals] == [1, 2, 3], "each saw the earlier turns"
    history = await client.get("/api/v1/chat/conversations", headers=bearer(token))
    [conversation] = history.json()["conversations"]
    assert conversation["message_count"] == 6, "one conversation, continued on both processes"
    assert conversation["title"].startswith("강남구")


async def test_anonymous_sessions_count_turns_but_keep_no_history(client, server, other_process):
    session = await start_session(client)
    [first] = await chat_turn(server, session, "강남구 아파트 시세 알려줘")
    [second] = await chat_turn(other_process.ws_url, session, "대출 한도는요?")
    finals = [event(turn, "final_response") for turn in (first, second)]
    assert [f["turn"] for f in finals] == [1, 2]
    assert [f["recent_turns"] for f in finals] == [1, 1], "no history of anonymous turns"
