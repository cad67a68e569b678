"""No log line carries a token: uvicorn's access and error logs, ours, and what a refused
client is told."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from memlayer.settings import Settings
from tests.support.api_client import bearer, chat_turn, register, start_session, ws_url
from tests.support.live_server import LiveServer


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
async def chatty_server(api_settings: Settings) -> AsyncIterator[LiveServer]:
    """A server that logs every request, as one at INFO does in production."""
    live = await LiveServer(api_settings, log_level="info").start()
    yield live
    await live.stop()


@pytest.fixture
def captured() -> Iterator[Capture]:
    capture = Capture()
    names = ("uvicorn.access", "uvicorn.error", "")
    for name in names:
        logging.getLogger(name).addHandler(capture)
    yield capture
    for name in names:
        logging.getLogger(name).removeHandler(capture)


async def test_no_log_line_carries_a_token(chatty_server, captured):
    async with httpx.AsyncClient(base_url=chatty_server.base_url) as http:
        user = await register(http)
        token = user["access_token"]
        # A client that puts its token in a URL anyway, and one that sends a forged one.
        ok = await http.get(f"/api/v1/memory/context?access_token={token}", headers=bearer(token))
        assert ok.status_code == 200
        forged = token[:-4] + "AAAA"
        refused = await http.get("/api/v1/memory/context", headers=bearer(forged))
        assert refused.status_code == 401 and forged not in refused.text
        session = await start_session(http, token)

    await chat_turn(chatty_server, session, "강남구 아파트 시세", token=token, auth="header")
    await chat_turn(chatty_server, session, "대출 금리", token=token, auth="frame")
    async with connect(ws_url(chatty_server, session) + f"?token={forged}") as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": forged}).decode())
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 4401 and forged not in closed.value.rcvd.reason

    assert any("/api/v1/memory/context" in line for line in captured.lines), captured.lines
    assert any("WebSocket" in line for line in captured.lines), "the socket was logged too"
    for line in captured.lines:
        assert token not in line and forged not in line, line
        assert token.split(".")[1] not in line, line  # not even the claims part
