"""The browser pages: the chat at ``/`` and the SRE page at ``/ops``, served as static files.

No build step and no CDN: the pages are plain HTML and ES modules under ``api/static``, so
the service that answers the API also serves the only client a person needs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

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
    app.mount("/static", StaticFiles(directory=static_dir), name="static")
