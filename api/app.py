"""The FastAPI application: routers under /api/v1, health and metrics at the root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from prometheus_fastapi_instrumentator import Instrumentator, metrics

from memlayer import __version__, multiproc
from memlayer.api.body_limit import BodySizeLimit
from memlayer.api.errors import install_error_handlers
from memlayer.api.logs import install_log_redaction
from memlayer.api.metrics import WORKERS
from memlayer.api.routes import auth, chat, health, memory, ops, pages
from memlayer.api.services import AppServices
from memlayer.settings import Settings, get_settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    install_log_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await AppServices.start(settings)
        app.state.services = services
        WORKERS.inc()
        try:
            yield
        finally:
            WORKERS.dec()
            multiproc.worker_stopped()
            await services.aclose()

    app = FastAPI(
        title="memlayer",
        version=__version__,
        description="Long-term memory for LLM chat backends.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    for router in (auth.router, chat.router, memory.router, ops.router):
        app.include_router(router, prefix="/api/v1")
    pages.install(app, STATIC_DIR)
    # Request counts and one latency histogram: the instrumentator's default set adds a
    # high-resolution histogram and size summaries, paid for on every request. Its metrics
    # live in the default registry like ours, so /metrics (routes/health.py) serves them
    # from every worker when there are several.
    instrumentator = Instrumentator(
        excluded_handlers=["/metrics", "/healthz"], should_group_status_codes=False
    )
    instrumentator.add(
        metrics.requests(should_include_status=True),
        metrics.latency(buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)),
    )
    instrumentator.instrument(app)
    # Outermost: an oversized body is refused before anything else reads it.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_body_bytes)
    return app
