"""The caller's own memory: read the context, delete one memory, forget everything.

``GET /memory/context`` is the measured hot path (``scripts/wrk-hotpath.sh``): with the
near-cache a warm load is a dictionary lookup, and FastAPI's dependency solving (a bearer
scheme, the caller, the service, two query parameters: about a third of the request's CPU
in a py-spy profile) was most of what remained. Its commonest request, no query string
and a bearer token, takes a direct path (:class:`_ContextRoute`) that does what the
dependencies do; every other request (a ``limit``, a ``user_id``, no or another kind of
credentials) goes through the declared dependencies, which are also what the OpenAPI
document says.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.routing import APIRoute

from memlayer.api.deps import MemoryServiceDep, OwnUser
from memlayer.api.openapi import errors
from memlayer.api.schemas import DeletedOut, MemoryContextOut
from memlayer.records import LoadResult

router = APIRouter(prefix="/memory", tags=["memory"])


def context_json(result: LoadResult) -> bytes:
    """Encode straight from the records: this endpoint is on the hot path.

    Depends on nothing but ``result``, so a near-cache hit's encoding is made once per
    entry and kept with it (``LoadResult.encoded``).
    """
    ctx = result.context
    return orjson.dumps(
        {
            "user_id": ctx.user_id,
            "source": result.source.value,
            "version": ctx.version,
            "memories": [
                {
                    "id": m.id,
                    "summary": m.summary,
                    "intent": m.intent,
                    "entities": m.entities,
                    "message_count": m.message_count,
                    "created_at": m.created_at,
                }
                for m in ctx.memories
            ],
            "preferences": ctx.preferences,
            "entities": [
                {
                    "type": e.type,
                    "name": e.name,
                    "mention_count": e.mention_count,
                    "last_seen": e.last_seen,
                }
                for e in ctx.entities
            ],
        }
    )


def _context_response(result: LoadResult) -> Response:
    return Response(result.encoded(context_json), media_type="application/json")


class _ContextRoute(APIRoute):
    """The declared route, plus a direct path for ``GET /memory/context`` with a bearer
    token and no query string (no dependency solving, same answers)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        solved = super().get_route_handler()

        async def handler(request: Request) -> Response:
            scope = request.scope
            if scope["query_string"]:
                return await solved(request)  # limit / user_id: validated as declared
            authorization = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                    break
            if authorization is None:
                return await solved(request)
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return await solved(request)
            services = request.app.state.services
            user = services.tokens.verify(token)  # InvalidToken: 401, as the dependency's
            return _context_response(await services.memory.load_context(user, None))

        return handler


async def get_context(
    user: OwnUser,
    memory: MemoryServiceDep,
    limit: Annotated[int | None, Query(ge=0, le=100)] = None,
) -> Response:
    return _context_response(await memory.load_context(user, limit))


router.add_api_route(
    "/context",
    get_context,
    methods=["GET"],
    response_model=MemoryContextOut,
    responses=errors(401, 403, 404, 422, 503),
    summary="The caller's memory context",
    route_class_override=_ContextRoute,
)


@router.delete(
    "/{memory_id}",
    response_model=DeletedOut,
    responses=errors(401, 403, 404, 422, 503),
)
async def delete_memory(
    user: OwnUser,
    memory: MemoryServiceDep,
    memory_id: Annotated[int, Path(gt=0, le=2**63 - 1)],
) -> DeletedOut:
    return DeletedOut(version=await memory.delete_memory(user, memory_id))


@router.delete(
    "",
    response_model=DeletedOut,
    responses=errors(401, 403, 404, 422, 503),
    summary="Forget me: every memory of the caller",
)
async def forget_me(user: OwnUser, memory: MemoryServiceDep) -> DeletedOut:
    return DeletedOut(version=await memory.forget_user(user))
