"""The versions the cache tier will build on (see memlayer.store's docstring): one bump of a
namespace's version per write transaction, in commit order; tree versions bumped up the
ancestry when a namespace appears; rows never deleted, so versions never start over."""

from __future__ import annotations

import asyncio

from langgraph.store.base import PutOp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from memlayer.store import MemlayerStore


async def _versions(engine: AsyncEngine) -> dict[str, tuple[int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT namespace, version, tree_version FROM store_namespaces")
        )
        return {name: (version, tree) for name, version, tree in rows}


async def test_each_write_transaction_bumps_its_namespaces_once(
    store: MemlayerStore, admin_engine: AsyncEngine
) -> None:
    await store.aput(("a", "b"), "k1", {"v": 1})
    assert await _versions(admin_engine) == {"": (0, 1), "a": (0, 1), "a.b": (1, 1)}
    await store.aput(("a", "b"), "k2", {"v": 1})
    await store.abatch(
        [
            PutOp(("a", "b"), "k3", {"v": 1}),
            PutOp(("a", "b"), "k4", {"v": 1}),
            PutOp(("a", "b"), "k1", None),
            PutOp(("a",), "k", {"v": 1}),
        ]
    )
    assert await _versions(admin_engine) == {"": (0, 1), "a": (1, 1), "a.b": (3, 1)}
    await store.adelete(("a", "b"), "k2")
    assert (await _versions(admin_engine))["a.b"] == (4, 1)


async def test_a_new_namespace_bumps_the_tree_version_of_every_ancestor(
    store: MemlayerStore, admin_engine: AsyncEngine
) -> None:
    await store.aput(("a", "b"), "k", {"v": 1})
    await store.aput(("a", "c"), "k", {"v": 1})
    assert await _versions(admin_engine) == {
        "": (0, 2),
        "a": (0, 2),
        "a.b": (1, 1),
        "a.c": (1, 1),
    }
    await store.aput(("a", "b", "d"), "k", {"v": 1})
    versions = await _versions(admin_engine)
    assert versions["a.b"] == (1, 2)
    assert versions["a.b.d"] == (1, 1)
    assert versions["a"] == (0, 3) and versions[""] == (0, 3)
    assert versions["a.c"] == (1, 1)  # a sibling's subtree did not change


async def test_a_delete_where_nothing_ever_was_creates_no_rows(
    store: MemlayerStore, admin_engine: AsyncEngine
) -> None:
    await store.adelete(("never", "was"), "k")
    assert await _versions(admin_engine) == {}


async def test_an_emptied_namespace_keeps_its_row_so_versions_never_restart(
    store: MemlayerStore, admin_engine: AsyncEngine
) -> None:
    await store.aput(("e",), "k", {"v": 1})
    await store.adelete(("e",), "k")
    await store.aput(("e",), "k", {"v": 2})
    assert (await _versions(admin_engine))["e"] == (3, 1)


async def test_concurrent_writers_of_one_namespace_each_get_their_own_version(
    store: MemlayerStore, admin_engine: AsyncEngine
) -> None:
    await asyncio.gather(*(store.aput(("hot",), f"k{i}", {"i": i}) for i in range(20)))
    assert (await _versions(admin_engine))["hot"] == (20, 1)
    assert len(await store.asearch(("hot",), limit=100)) == 20


async def test_concurrent_batches_over_the_same_namespaces_in_any_order_all_commit(
    store: MemlayerStore, admin_engine: AsyncEngine
) -> None:
    """Writers lock namespace rows in one order, so no two batches deadlock."""
    names = [("n", str(i)) for i in range(6)]

    def batch(order: list[tuple[str, ...]], tag: int) -> list[PutOp]:
        return [PutOp(ns, f"k{tag}", {"tag": tag}) for ns in order]

    batches = [batch(names if t % 2 else names[::-1], t) for t in range(12)]
    await asyncio.gather(*(store.abatch(b) for b in batches))
    versions = await _versions(admin_engine)
    assert all(versions[f"n.{i}"][0] == 12 for i in range(6))
    assert len(await store.asearch(("n",), limit=1000)) == 72
