"""Liveness, readiness and Prometheus metrics (every worker's, when there are several)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from memlayer.api.deps import Services
from memlayer.api.openapi import errors
from memlayer.api.schemas import ComponentStatus, ReadyOut
from memlayer.metrics import service_registry

router = APIRouter(tags=["health"])

_HEALTHY = b'{"status":"ok"}'


@router.get("/healthz", summary="The process is up", responses=errors())
async def healthz() -> Response:
    return Response(_HEALTHY, media_type="application/json")


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    """The Prometheus text of the whole service (a plain def: reading files runs off the loop)."""
    return Response(generate_latest(service_registry()), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={**errors(), 503: {"model": ReadyOut, "description": "A component is down."}},
    summary="Postgres and Redis reachable, per component",
)
async def readyz(services: Services) -> JSONResponse:
    postgres, redis = await asyncio.gather(_postgres(services), _redis(services))
    ready = postgres.status == "up" and redis.status != "down"
    body = ReadyOut(
        status="ready" if ready else "degraded", components={"postgres": postgres, "redis": redis}
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


async def _postgres(services: Services) -> ComponentStatus:
    try:
        async with asyncio.timeout(2):
            await services.database.ping()
        return ComponentStatus(status="up")
    except Exception as exc:  # readiness reports any failure, whatever its kind
        return ComponentStatus(status="down", detail=type(exc).__name__)


async def _redis(services: Services) -> ComponentStatus:
    if services.redis is None:
        return ComponentStatus(status="disabled", detail="cache disabled by settings")
    up = await services.cache.ping()
    return ComponentStatus(status="up") if up else ComponentStatus(status="down", detail="no PONG")
