"""The browser fixtures' types (tests/e2e/conftest.py provides them), for test signatures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import Page

# open_page(width=1280, height=860): a page in a fresh browser context at that viewport.
OpenPage = Callable[..., Awaitable[Page]]
# screenshot(page, name): keeps a full-page picture in test-artifacts/screenshots/.
Screenshot = Callable[[Page, str], Awaitable[Path]]
