"""Random streams of puts, deletes, gets, searches and namespace listings on memlayer's
store, compared op by op with ``InMemoryStore`` (the kit's Hypothesis state machine).

The machine drives the store's synchronous methods from a worker thread while the store
runs on the test's event loop, so the sync bridge is exercised on every step too.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from memlayer.store import MemlayerStore
from memlayer.store import metrics as store_metrics
from memlayer.store.conformance.stateful import run_store_state_machine
from tests.support.metrics import current
from tests.support.store import reset_memlayer_store


async def _run(store: MemlayerStore, engine: AsyncEngine) -> None:
    loop = asyncio.get_running_loop()

    def reset() -> None:
        asyncio.run_coroutine_threadsafe(reset_memlayer_store(store, engine), loop).result()

    await asyncio.to_thread(run_store_state_machine, store, reset)


async def test_random_op_streams_match_in_memory_store_on_postgres(
    memlayer_pg_store: MemlayerStore, store_pg_engine: AsyncEngine
) -> None:
    await _run(memlayer_pg_store, store_pg_engine)


@pytest.mark.external
async def test_random_op_streams_match_in_memory_store_on_cached_postgres(
    memlayer_cached_store: MemlayerStore, store_cached_engine: AsyncEngine
) -> None:
    """The production flavour: every get and search goes through the near-cache and the
    Redis tier."""
    hits = current(store_metrics.LOOKUP_HIT)
    near = current(store_metrics.LOOKUP_NEAR)
    await _run(memlayer_cached_store, store_cached_engine)
    assert current(store_metrics.LOOKUP_HIT) > hits, "the reads were answered from Redis"
    assert current(store_metrics.LOOKUP_NEAR) > near, "and from process memory"


async def test_random_op_streams_match_in_memory_store_on_embedded_sqlite(
    memlayer_sqlite_store: MemlayerStore, store_sqlite_engine: AsyncEngine
) -> None:
    await _run(memlayer_sqlite_store, store_sqlite_engine)
