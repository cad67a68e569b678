"""The caller's own memory: read the context, delete one memory, forget everything."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Query, Response

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


@router.get(
    "/context",
    response_model=MemoryContextOut,
    responses=errors(401, 403, 404, 422, 503),
    summary="The caller's memory context",
)
async def get_context(
    user: OwnUser,
    memory: MemoryServiceDep,
    limit: Annotated[int | None, Query(ge=0, le=100)] = None,
) -> Response:
    result = await memory.load_context(user, limit)
    return Response(result.encoded(context_json), media_type="application/json")


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
