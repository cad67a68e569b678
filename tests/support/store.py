"""Helpers the store suites share: empty a store's tables between tests, see what a store
sends to Redis and Postgres, have its near-cache serving."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

import pytest
from langgraph.store.postgres import AsyncPostgresStore
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from memlayer.cache.family_store import FamilyStore
from memlayer.cache.invalidation import InvalidationLink
from memlayer.store import MemlayerStore

# What the open_pg_store fixture (tests/integration/store) is: open_pg_store(ttl=..., **settings).
OpenStore = Callable[..., AbstractAsyncContextManager[MemlayerStore]]


async def empty_memlayer_tables(engine: AsyncEngine) -> None:
    """Delete every item and namespace row, and what the outbox owes for them (tests only:
    production never deletes rows of store_namespaces, so that versions never start over;
    a cached store must be turned over too, see :func:`reset_memlayer_store`)."""
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM store_items"))
        await conn.execute(text("DELETE FROM store_namespaces"))
        await conn.execute(text("DELETE FROM cache_outbox WHERE family = 'ns'"))


async def reset_memlayer_store(store: MemlayerStore, engine: AsyncEngine) -> None:
    """Empty the tables under a store. Versions then start over, so a cached store's
    values (at higher versions) must go too: its cache turns over to a new generation."""
    await empty_memlayer_tables(engine)
    if store.cache is not None:
        await store.cache.turn_over()


async def empty_peer(store: AsyncPostgresStore) -> None:
    """Delete every item of the peer store (langgraph-checkpoint-postgres' own table)."""
    async with store._cursor() as cur:  # the peer's own connection helper
        await cur.execute("DELETE FROM store")


def psycopg_dsn(sqlalchemy_url: str) -> str:
    """The same database as a libpq URL, for AsyncPostgresStore (psycopg)."""
    from sqlalchemy.engine import make_url

    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


class StatementLog:
    """Every SQL statement an engine sends while the block runs (BEGIN/COMMIT excluded),
    except the cache tier's background work on the same engine (outbox acknowledgements,
    drain rounds, backlog counts, the generation floor of an epoch check), which runs on
    its own clock, not for the ops under test."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        self.statements: list[str] = []

    def _record(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        flat = " ".join(statement.split())
        if not flat.startswith(_BACKGROUND):
            self.statements.append(flat)

    def __enter__(self) -> StatementLog:
        from sqlalchemy import event

        event.listen(self._engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: object) -> None:
        from sqlalchemy import event

        event.remove(self._engine, "before_cursor_execute", self._record)

    def of(self, verb: str) -> list[str]:
        return [s for s in self.statements if s.upper().startswith(verb.upper())]

    @property
    def writes(self) -> list[str]:
        return [s for s in self.statements if s.split(" ", 1)[0].upper() in _WRITES]


_WRITES = {"INSERT", "UPDATE", "DELETE", "WITH"}
_BACKGROUND = (
    "DELETE FROM cache_outbox",
    "SELECT count(*), COALESCE(EXTRACT(EPOCH",
    "SELECT cache_generations.",
    "INSERT INTO cache_generations",
)


@contextmanager
def mgets(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Every read the store's cache sends to Redis (the namespaces' digests of each): a GET
    of one namespace and an MGET of several both go through ``FamilyStore.get_many``."""
    calls: list[list[str]] = []
    original = FamilyStore.get_many

    async def spy(self: FamilyStore[str], keys: Any, generation: int) -> list[bytes | None]:
        calls.append(list(keys))
        return await original(self, keys, generation)

    monkeypatch.setattr(FamilyStore, "get_many", spy)
    yield calls
    monkeypatch.setattr(FamilyStore, "get_many", original)


NEAR_WAIT_S = 10.0  # generous: a shared 2-core machine


async def near_ready(store: MemlayerStore) -> InvalidationLink:
    """Until ``store``'s near-cache serves: its link established, and the news of its
    first epoch record (written by its first read of a fresh prefix, dropping the
    near-cache) heard, so a test's own reads settle into it. Returns the link."""
    cache = store.cache
    assert cache is not None
    link = cache.near_link
    assert link is not None, "no invalidation link: the near-cache cannot serve here"
    await asyncio.wait_for(link.wait_established(), NEAR_WAIT_S)
    await store.aget(("near-ready",), "k")
    await link.barrier()
    assert cache.near_serving
    return link
