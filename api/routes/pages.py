"""The browser pages: the chat at ``/`` and the SRE page at ``/ops``, served as static files.

No build step and no CDN: the pages are plain HTML and ES modules under ``api/static``, so
the service that answers the API also serves the only client a person needs.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

# Everything the pages load comes from this origin; the chat socket is same-origin too
# ('self' covers ws:/wss: to the same host in CSP level 3).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

JAVASCRIPT = "text/javascript; charset=utf-8"


class StaticAssets(StaticFiles):
    """The pages' files, with every ``.js`` served as JavaScript whatever the host says.

    Browsers refuse to run a module script whose Content-Type is not a JavaScript type, and
    ``StaticFiles`` takes the type from the platform's ``mimetypes`` table, which some hosts
    (a Windows registry) map ``.js`` to ``text/plain`` in. ``nosniff`` as on the pages.
    """

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if os.fspath(full_path).endswith(".js"):
            response.headers["Content-Type"] = JAVASCRIPT
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(app: FastAPI, static_dir: Path) -> None:
    """Serve ``/``, ``/ops`` and ``/static/*`` from ``static_dir``."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def chat_page() -> FileResponse:
        return FileResponse(static_dir / "index.html", headers=PAGE_HEADERS)

    @router.get("/ops")
    async def ops_page() -> FileResponse:
        return FileResponse(static_dir / "ops.html", headers=PAGE_HEADERS)

    app.include_router(router)
    app.mount("/static", StaticAssets(directory=static_dir), name="static")
