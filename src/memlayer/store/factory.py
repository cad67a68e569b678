"""``open_store()``: a ``MemlayerStore`` on the configured database, and its clean-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from alembic import command
from langgraph.store.base import TTLConfig
from sqlalchemy.engine import make_url

from memlayer.memory.db import make_engine
from memlayer.migrations import alembic_config
from memlayer.settings import Settings, get_settings
from memlayer.store.errors import VectorSearchUnsupported
from memlayer.store.repository import StoreRepository
from memlayer.store.store import MemlayerStore
from memlayer.store.ttl import TTLPolicy

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_store(
    settings: Settings | None = None,
    *,
    ttl: TTLConfig | None = None,
    index: Any = None,
) -> AsyncIterator[MemlayerStore]:
    """A store on ``settings`` (default: the ``MEMLAYER_*`` environment).

    With no database configured (the embedded default) it migrates its SQLite file itself;
    on Postgres the tables come with ``memlayer migrate``, and a database without them fails
    here with ``StoreNotMigrated``. ``ttl`` overrides the ``MEMLAYER_STORE_*`` TTL settings
    key by key. ``index`` (vector search) is refused with ``VectorSearchUnsupported``.
    """
    if index is not None:
        raise VectorSearchUnsupported("open_store(index=...)")
    settings = settings if settings is not None else get_settings()
    policy = TTLPolicy.resolve(ttl, settings)
    url = settings.resolved_database_url()
    if settings.embedded:
        log.info("memlayer store: embedded SQLite at %s (not for production)", url)
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    engine = make_engine(url, settings)
    try:
        repository = StoreRepository(engine)
        await repository.probe(make_url(url).render_as_string(hide_password=True))
        store = MemlayerStore(repository, policy)
        try:
            yield store
        finally:
            await store.aclose()
    finally:
        await engine.dispose()
