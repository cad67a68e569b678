"""The pages as a person uses them, in a real Chromium against a real server.

Every wait is one of Playwright's auto-waiting assertions: the page is done when the text
a person would read is there, never after a fixed delay.
"""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.async_api import Page, expect

from tests.support.browser import OpenPage, Screenshot
from tests.support.live_server import LiveServer

PASSWORD = "password-123"
FIRST_QUERY = "강남구 아파트 시세 알려줘"
SECOND_QUERY = "마포구 전세 대출 금리 알려줘"


def new_email() -> str:
    return f"web-{uuid.uuid4().hex[:10]}@example.com"


async def ask(page: Page, query: str) -> None:
    """Type a question and send it with Enter, as a keyboard user does."""
    box = page.get_by_label("질문")
    await box.fill(query)
    await box.press("Enter")
    await expect(box).to_have_value("")


def last_answer(page: Page):
    return page.locator("#messages .msg.assistant").last


async def test_second_session_shows_memory_from_cache_and_forgetting_empties_it(
    open_page: OpenPage, screenshot: Screenshot
) -> None:
    page = await open_page()
    await page.goto("/")
    await page.get_by_label("이메일").fill(new_email())
    await page.get_by_label("비밀번호").fill(PASSWORD)
    await page.get_by_role("button", name="회원가입").click()
    await expect(page.locator("#identity-label")).to_contain_text("@example.com")
    assert "token" not in page.url and "@" not in page.url, "identity must stay out of the URL"

    # First session: a new user has nothing stored, and the empty context came from Postgres.
    await ask(page, FIRST_QUERY)
    await expect(last_answer(page)).to_be_visible()
    await expect(page.locator("#memory-count")).to_have_text("0")
    await expect(page.locator("#memory-source")).to_contain_text("database")
    await expect(page.locator("#messages .step")).to_contain_text(
        ["계획 완료", "기억 0개 불러옴", "검색팀 완료", "분석팀 완료", "답변 완료"]
    )
    await expect(page.locator("#conversations li")).to_have_count(1)
    await screenshot(page, "01-first-turn-signed-in")

    # "새 대화" starts a new session; its first turn reads the first session's memory
    # from a cache tier: Redis, where the first turn's write-through put it, or the
    # server's near-cache once a read settled it there.
    old_status = await page.locator("#connection").text_content()
    await page.get_by_role("button", name="새 대화").click()
    await expect(page.locator("#messages li")).to_have_count(0)
    await expect(page.locator("#connection")).not_to_have_text(old_status or "")
    await expect(page.locator("#connection")).to_contain_text("연결됨")
    await ask(page, SECOND_QUERY)
    await expect(last_answer(page)).to_contain_text("강남구")
    await expect(page.locator("#memory-source")).to_have_text(re.compile(r"\((near|cache)\)$"))
    await expect(page.locator("#memory-count")).to_have_text("1")
    memories = page.locator("#memory-list .memory-item")
    await expect(memories).to_have_count(1)
    await expect(memories.first).to_contain_text(FIRST_QUERY)
    await expect(page.locator("#memory-entities")).to_contain_text("강남구")
    # The sidebar lists the caller's conversations, newest first.
    await expect(page.locator("#conversations .title")).to_have_text([SECOND_QUERY, FIRST_QUERY])
    await screenshot(page, "02-second-session-memory-from-cache")

    # Forget one: the panel now shows what is stored, i.e. only the second turn's memory.
    await memories.first.get_by_role("button", name=re.compile("기억 잊기")).click()
    await expect(page.locator("#memory-title")).to_have_text("지금 저장된 기억")
    await expect(memories).to_have_count(1)
    await expect(memories.first).to_contain_text(SECOND_QUERY)

    # Forget everything (after the confirmation dialog): the panel is empty.
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="모든 기억 지우기").click()
    await expect(page.locator("#memory-note")).to_have_text("모든 기억을 지웠습니다.")
    await expect(memories).to_have_count(0)
    await expect(page.locator("#memory-count")).to_have_text("0")
    await expect(page.locator("#memory-empty")).to_be_visible()
    await expect(page.locator("#memory-entities li")).to_have_count(0)
    await screenshot(page, "03-after-forget-everything")

    # The next turn's planning reads the forgotten (empty) context, still from a cache tier:
    # Redis, or the server's near-cache (the panel's own read may have settled it there).
    await ask(page, FIRST_QUERY)
    await expect(page.locator("#messages .msg.assistant")).to_have_count(2)
    await expect(page.locator("#memory-title")).to_have_text("이번 턴에 불러온 기억")
    await expect(page.locator("#memory-count")).to_have_text("0")
    await expect(page.locator("#memory-source")).to_have_text(re.compile(r"\((near|cache)\)$"))
    await expect(memories).to_have_count(0)


async def test_anonymous_chat_shows_no_memory_on_a_narrow_screen(
    open_page: OpenPage, screenshot: Screenshot
) -> None:
    page = await open_page(width=390, height=844)
    await page.goto("/")
    await page.get_by_role("button", name="익명으로 계속하기").click()
    await expect(page.locator("#identity-label")).to_have_text("익명 사용자")
    await expect(page.locator("#connection")).to_contain_text("연결됨")

    await ask(page, FIRST_QUERY)
    await expect(last_answer(page)).to_be_visible()
    await expect(page.locator("#messages .step").nth(1)).to_have_text(
        "기억 0개 불러옴 · 출처: 없음 (none)"
    )
    await expect(page.locator("#memory-count")).to_have_text("0")
    await expect(page.locator("#memory-source")).to_contain_text("none")
    await expect(page.locator("#memory-list .memory-item")).to_have_count(0)
    await expect(page.locator("#memory-note")).to_contain_text("익명 대화는 기억을")
    await expect(page.get_by_role("button", name="모든 기억 지우기")).to_be_hidden()
    await expect(page.locator("#history-note")).to_contain_text("익명 대화는 기록되지 않습니다")

    # Readable at 390 px: nothing runs off the side of the screen.
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 390px"
    await screenshot(page, "04-anonymous-narrow-390px")


async def test_sign_in_with_an_existing_account_and_a_wrong_password(
    open_page: OpenPage, server: LiveServer, screenshot: Screenshot
) -> None:
    email = new_email()
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        created = await http.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert created.status_code == 201, created.text

    page = await open_page(width=390, height=844)
    await page.goto("/")
    await page.get_by_label("이메일").fill(email)
    await page.get_by_label("비밀번호").fill("wrong-password")
    await page.get_by_label("비밀번호").press("Enter")  # Enter submits the sign-in
    await expect(page.get_by_role("alert")).to_have_text("이메일 또는 비밀번호가 맞지 않습니다.")
    await screenshot(page, "00-sign-in-wrong-password-390px")

    await page.get_by_label("비밀번호").fill(PASSWORD)
    await page.get_by_label("비밀번호").press("Enter")
    await expect(page.locator("#identity-label")).to_have_text(email)
    await expect(page.locator("#history-note")).to_have_text("아직 대화가 없습니다.")
    stored = await page.evaluate("sessionStorage.getItem('memlayer.auth')")
    assert stored and "access_token" not in page.url

    # A reload keeps the sign-in (sessionStorage); signing out forgets it.
    await page.reload()
    await expect(page.locator("#identity-label")).to_have_text(email)
    await page.get_by_role("button", name="로그아웃").click()
    await expect(page.get_by_label("이메일")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('memlayer.auth')") is None


async def test_ops_page_shows_the_hit_ratio(
    open_page: OpenPage, server: LiveServer, screenshot: Screenshot
) -> None:
    # A miss and then a hit, so the ratio is a number whoever ran before us.
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        created = await http.post(
            "/api/v1/auth/register", json={"email": new_email(), "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {created.json()['access_token']}"}
        for _ in range(2):
            loaded = await http.get("/api/v1/memory/context", headers=headers)
            assert loaded.status_code == 200, loaded.text

    page = await open_page()
    await page.goto("/ops")
    await expect(page.locator("#hit-ratio")).to_have_text(re.compile(r"^\d{1,3}\.\d%$"))
    await expect(page.locator("#breaker")).to_have_text("닫힘 (정상)")
    await expect(page.locator("#workers")).to_have_text("1")  # the test server: one process
    await expect(page.locator("#latency tr")).to_have_count(3)  # near, cache, database
    await expect(page.locator("#latency")).to_contain_text("캐시 (cache)")
    await expect(page.locator("#latency")).to_contain_text("프로세스 캐시 (near)")
    # Which tier answered: near-cache, Redis, Postgres (the shares of cache/stats.py).
    await expect(page.locator("#tiers tr")).to_have_count(3)
    await expect(page.locator("#near-share")).to_have_text(re.compile(r"^\d{1,3}\.\d%$"))
    await expect(page.locator("#near")).to_contain_text("무효화 연결")
    await expect(page.locator("#db-total")).to_contain_text("누적")
    await expect(page.locator("#hit-chart path.cumulative")).to_have_count(1)
    # DB queries/s needs two samples; the second arrives on the page's own refresh.
    await expect(page.locator("#db-qps")).to_have_text(re.compile(r"^[\d,.]+$"))
    await screenshot(page, "05-ops")


async def test_every_form_field_has_a_label(open_page: OpenPage) -> None:
    page = await open_page()
    for path in ("/", "/ops"):
        await page.goto(path)
        await expect(page.locator("h1")).to_contain_text("memlayer")
        unlabelled = await page.evaluate(
            """() => [...document.querySelectorAll('input, textarea, select')]
                .filter((field) => field.labels.length === 0 && !field.getAttribute('aria-label'))
                .map((field) => field.id || field.name)"""
        )
        assert unlabelled == [], f"{path}: fields without a label: {unlabelled}"
        assert await page.locator("html").get_attribute("lang") == "ko"


async def test_an_expired_sign_in_goes_back_to_the_sign_in_form(open_page: OpenPage) -> None:
    """A token the service no longer accepts (401 on HTTP, 4401 on the socket) signs out."""
    page = await open_page()
    await page.goto("/")
    await page.evaluate(
        """sessionStorage.setItem('memlayer.auth', JSON.stringify(
            {token: 'expired-or-forged', userId: 1, email: 'gone@example.com'}))"""
    )
    await page.reload()
    await expect(page.locator("#auth-error")).to_have_text(
        "로그인이 만료되었습니다. 다시 로그인하세요."
    )
    await expect(page.get_by_label("이메일")).to_be_visible()
    await expect(page.locator("#chat-view")).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('memlayer.auth')") is None


async def test_a_session_ended_elsewhere_fails_the_waiting_turn_and_the_next_one_starts_anew(
    open_page: OpenPage, server: LiveServer
) -> None:
    """The socket closes (4004) under a waiting question; the next question opens a session."""
    page = await open_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await page.goto("/")
    await page.get_by_label("이메일").fill(new_email())
    await page.get_by_label("비밀번호").fill(PASSWORD)
    await page.get_by_role("button", name="회원가입").click()
    await expect(page.locator("#connection")).to_contain_text("연결됨")
    session_id = sockets[-1].rsplit("/", 1)[1]
    auth = await page.evaluate("JSON.parse(sessionStorage.getItem('memlayer.auth'))")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        ended = await http.post(
            f"/api/v1/chat/sessions/{session_id}/end",
            headers={"Authorization": f"Bearer {auth['token']}"},
        )
        assert ended.status_code == 200, ended.text

    await ask(page, FIRST_QUERY)
    await expect(page.locator("#messages .msg.error")).to_have_text(
        "답변을 받기 전에 연결이 끊겼습니다."
    )
    await expect(page.locator("#connection")).to_have_text(
        "연결이 끊겼습니다. 질문을 보내면 다시 연결합니다."
    )
    await expect(page.locator("#send")).to_be_enabled()

    await ask(page, SECOND_QUERY)
    await expect(last_answer(page)).to_be_visible()
    await expect(page.locator("#connection")).to_contain_text("연결됨")
    assert session_id not in sockets[-1], "the next question runs in a new session"
