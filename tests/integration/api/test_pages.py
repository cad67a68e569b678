"""The pages' scripts load as a browser loads them: ES modules from 'self', as JavaScript.

A browser refuses a module script served with a non-JavaScript Content-Type, and a page
whose CSP does not allow 'self' scripts runs none of them. The browser tests (tests/e2e)
see the result; these say why, module by module.
"""

from __future__ import annotations

import mimetypes
import re

import httpx
import pytest

from memlayer.api.app import STATIC_DIR

PAGES = ("/", "/ops")
MODULE_SCRIPT = re.compile(r'<script type="module" src="(/static/[\w./-]+\.js)"></script>')
# Static imports: `import {...} from "./x.js"` and `import "./x.js"` (no bundler, no bare names).
IMPORT = re.compile(r'^import\s+(?:[^"\']*?\s+from\s+)?"\./([\w-]+\.js)";', re.M)


async def module_graph(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    """Every script the pages load, directly or through imports, with its response."""
    pending: list[str] = []
    for page in PAGES:
        html = await client.get(page)
        assert html.status_code == 200, page
        pending += MODULE_SCRIPT.findall(html.text)
    assert pending, "the pages load no module script"
    seen: dict[str, httpx.Response] = {}
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen[path] = response = await client.get(path)
        assert response.status_code == 200, path
        pending += [f"/static/{name}" for name in IMPORT.findall(response.text)]
    return seen


async def test_pages_allow_only_their_own_scripts(client: httpx.AsyncClient) -> None:
    for page in PAGES:
        response = await client.get(page)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy, page
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, page


async def test_every_module_the_pages_import_is_served_as_javascript(
    client: httpx.AsyncClient,
) -> None:
    graph = await module_graph(client)
    for path, response in graph.items():
        assert response.headers["content-type"] == "text/javascript; charset=utf-8", path
        assert response.headers["x-content-type-options"] == "nosniff", path
    # Shared modules are imported by both pages, and no module file lies unused.
    assert {"/static/app.js", "/static/ops.js", "/static/labels.js"} <= set(graph)
    assert set(graph) == {f"/static/{p.name}" for p in STATIC_DIR.glob("*.js")}


async def test_javascript_stays_javascript_when_the_host_maps_js_to_plain_text(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some hosts' MIME tables (a Windows registry) say ``.js`` is ``text/plain``."""
    mimetypes.guess_type("warm-up.js")  # the table exists before we change it
    monkeypatch.setitem(mimetypes.types_map, ".js", "text/plain")
    assert mimetypes.guess_type("app.js")[0] == "text/plain"
    response = await client.get("/static/app.js")
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
