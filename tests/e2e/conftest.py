"""A real server on real Postgres and Redis, and a real headless Chromium (Debian's package).

Playwright's Python package only drives the browser: we never download one
(`playwright install`), we launch the system's Chromium. ``scripts/e2e-deps.sh``
installs it when it is missing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from tests.support.api_server import api_settings, pg_proxy, redis_proxy, server
from tests.support.browser import OpenPage, Screenshot
from tests.support.live_server import LiveServer

# The API tests' live server (real Postgres and Redis behind proxies), reused as is.
__all__ = ["api_settings", "pg_proxy", "redis_proxy", "server"]

CHROMIUM = Path(os.environ.get("MEMLAYER_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

# Auto-waiting assertions poll until this long; a turn on a cold test server takes ~1 s.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}. Run scripts/e2e-deps.sh (the Makefile's "
            "test target does) or set MEMLAYER_E2E_CHROMIUM.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def open_page(browser: Browser, server: LiveServer) -> AsyncIterator[OpenPage]:
    """Opens a page in a fresh browser context (its own sessionStorage) at a viewport size.

    Uncaught script errors and console errors fail the test at teardown: a page that
    throws while still showing the right text is broken for the next click.
    """
    contexts = []
    errors: list[str] = []

    async def open_(width: int = 1280, height: int = 860) -> Page:
        context = await browser.new_context(
            base_url=server.base_url,
            viewport={"width": width, "height": height},
            locale="ko-KR",
        )
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on("console", lambda msg: _keep_console_error(msg, errors))
        return page

    yield open_
    for context in contexts:
        await context.close()
    assert not errors, errors


def _keep_console_error(message: ConsoleMessage, errors: list[str]) -> None:
    # Refused requests (a wrong password's 401) are part of the scenarios; the page
    # shows them, and the tests read what it shows.
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        errors.append(f"console: {message.text}")


@pytest.fixture(scope="session")
def screenshot() -> Screenshot:
    """Keeps a picture of a state worth looking at (test-artifacts/ is gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=path, full_page=True)
        return path

    return take
