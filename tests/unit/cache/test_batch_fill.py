"""The fill protocol for the misses of a whole batch (``fill.BatchFillProtocol``), on the
in-process Redis stand-in: one lease pipeline, ONE load for every key that needs the
database, one install pipeline; waiting for another process's lease; stale installs
refused; leases handed back when the load fails; Redis failures sent to the loader."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from functools import partial

import fakeredis
import pytest

from memlayer.cache import keys
from memlayer.cache.background import BackgroundTasks
from memlayer.cache.breaker import CircuitBreaker
from memlayer.cache.codec import encode_marker, frame, read_frame
from memlayer.cache.dirty import DirtyKeys, DirtyUsers
from memlayer.cache.errors import CodecError
from memlayer.cache.family_state import FamilyState
from memlayer.cache.family_store import FamilyStore
from memlayer.cache.fill import BatchFillProtocol, FillHooks
from memlayer.cache.recent import RecentVersions
from memlayer.cache.state import TierState
from memlayer.records import ANY_SOURCE, LoadSource, ReadFloor

PREFIX = "unit-batch"
GEN = 1
A, B, C = (keys.namespace_digest(name) for name in ("a", "b", "c"))


class Loader:
    """Loads ``name@version`` strings; records each call's keys and floors."""

    def __init__(self, version: int = 1) -> None:
        self.version = version
        self.calls: list[dict[str, ReadFloor]] = []
        self.error: Exception | None = None

    async def __call__(self, floors: Mapping[str, ReadFloor]) -> dict[str, str]:
        self.calls.append(dict(floors))
        if self.error is not None:
            raise self.error
        return {key: f"{key[:4]}@{self.version}" for key in floors}


def _decode(_key: str, raw: bytes) -> str | None:
    _version, payload = read_frame(raw)
    return None if payload is None else bytes(payload).decode()


def _encode(value: str) -> bytes:
    return frame(int(value.rsplit("@", 1)[1]), value.encode())


class Rig:
    def __init__(
        self,
        server: fakeredis.FakeServer,
        *,
        wait_s: float = 1.0,
        decode: Callable[[str, bytes], str | None] = _decode,
    ) -> None:
        self.client = fakeredis.FakeAsyncRedis(server=server)
        self.store: FamilyStore[str] = FamilyStore(
            self.client,
            1.0,
            partial(keys.namespace_key, PREFIX),
            partial(keys.namespace_lease_key, PREFIX),
        )
        self.shared = TierState(CircuitBreaker(100, 3600.0), DirtyUsers(10))
        self.state: FamilyState[str] = FamilyState(self.shared, DirtyKeys(10), RecentVersions(10))
        self.hooks: FillHooks[str, str] = FillHooks()
        self.fills: BatchFillProtocol[str, str] = BatchFillProtocol(
            self.store,
            self.state,
            BackgroundTasks(),
            self.hooks,
            decode=decode,
            encode=_encode,
            ttl=lambda: 60_000,
            lease_ms=5_000,
            wait_s=wait_s,
            poll_s=0.005,
        )

    async def raw(self, key: str) -> bytes | None:
        value: bytes | None = await self.client.get(keys.namespace_key(PREFIX, key, GEN))
        return value


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


async def test_every_key_that_needs_the_database_is_loaded_by_one_call(
    server: fakeredis.FakeServer,
) -> None:
    rig, loader = Rig(server), Loader()

    cold = await rig.fills.fill_many([A, B, C], GEN, loader, {})
    warm = await rig.fills.fill_many([A, B, C], GEN, loader, {})

    assert len(loader.calls) == 1 and set(loader.calls[0]) == {A, B, C}
    assert {k: f.source for k, f in cold.items()} == dict.fromkeys((A, B, C), LoadSource.DATABASE)
    assert {k: f.source for k, f in warm.items()} == dict.fromkeys((A, B, C), LoadSource.CACHE)
    assert warm[A].value == f"{A[:4]}@1"
    assert not await rig.client.exists(keys.namespace_lease_key(PREFIX, A, GEN))  # released


async def test_a_key_another_process_is_filling_waits_for_that_value(
    server: fakeredis.FakeServer,
) -> None:
    rig, other, loader = Rig(server), Rig(server), Loader()
    lease = keys.namespace_lease_key(PREFIX, A, GEN)
    await rig.client.set(lease, b"someone-else")

    async def the_other_fills(_key: str) -> None:
        await other.store.fill(A, GEN, _encode("other@5"), 60_000, None, None)

    rig.hooks.before_lease_wait = the_other_fills
    found = await rig.fills.fill_many([A, B], GEN, loader, {})

    assert found[A].value == "other@5" and found[A].source is LoadSource.CACHE
    assert [set(call) for call in loader.calls] == [{B}]


async def test_a_waiter_whose_filler_never_fills_loads_and_installs_itself(
    server: fakeredis.FakeServer,
) -> None:
    rig, loader = Rig(server, wait_s=0.05), Loader(version=3)
    await rig.client.set(keys.namespace_lease_key(PREFIX, A, GEN), b"someone-else")

    found = await rig.fills.fill_many([A, B], GEN, loader, {})

    assert sorted(len(call) for call in loader.calls) == [1, 1]  # B at once, A after the wait
    assert found[A].source is LoadSource.DATABASE
    raw = await rig.raw(A)
    assert raw is not None and read_frame(raw)[0] == 3


async def test_a_slow_fill_never_overwrites_a_newer_value(server: fakeredis.FakeServer) -> None:
    rig, writer, loader = Rig(server), Rig(server), Loader(version=1)

    async def a_write_lands_meanwhile(key: str, _value: str) -> None:
        await writer.store.fill(key, GEN, _encode("newer@2"), 60_000, None, None)

    rig.hooks.before_fill = a_write_lands_meanwhile
    found = await rig.fills.fill_many([A], GEN, loader, {})

    assert found[A].value == f"{A[:4]}@1"  # what this load saw, returned as loaded
    raw = await rig.raw(A)
    assert raw is not None and _decode(A, raw) == "newer@2"  # but never installed over v2


async def test_a_marker_s_version_is_the_floor_of_the_load(server: fakeredis.FakeServer) -> None:
    rig, loader = Rig(server), Loader(version=7)
    await rig.store.invalidate_many([(A, encode_marker(7))], GEN, 60_000)

    await rig.fills.fill_many([A, B], GEN, loader, {})

    assert loader.calls == [{A: ReadFloor(7), B: ANY_SOURCE}]


async def test_a_failing_load_hands_its_leases_back(server: fakeredis.FakeServer) -> None:
    rig, loader = Rig(server), Loader()
    loader.error = RuntimeError("the database is down")

    with pytest.raises(RuntimeError, match="down"):
        await rig.fills.fill_many([A, B], GEN, loader, {})

    for key in (A, B):
        assert not await rig.client.exists(keys.namespace_lease_key(PREFIX, key, GEN))


async def test_bytes_a_reader_found_unusable_are_replaced_at_the_same_version(
    server: fakeredis.FakeServer,
) -> None:
    """An expired namespace value keeps its version: the reader hands its bytes over as
    the ones to replace, and the fill replaces exactly those (compare-and-set)."""
    stale = _encode("expired@4")

    def expired_is_unusable(key: str, raw: bytes) -> str | None:
        if raw == stale:  # as the store's decode refuses a value past its expiry
            raise CodecError("expired")
        return _decode(key, raw)

    rig, loader = Rig(server, decode=expired_is_unusable), Loader(version=4)
    await rig.store.fill(A, GEN, stale, 60_000, None, None)
    found = await rig.fills.fill_many([A], GEN, loader, {A: stale})

    assert found[A].source is LoadSource.DATABASE
    raw = await rig.raw(A)
    assert raw is not None and _decode(A, raw) == f"{A[:4]}@4"


async def test_when_redis_fails_every_key_goes_to_the_loader(
    server: fakeredis.FakeServer,
) -> None:
    rig, loader = Rig(server), Loader()
    server.connected = False

    found = await rig.fills.fill_many([A, B], GEN, loader, {})

    assert {k: f.source for k, f in found.items()} == dict.fromkeys((A, B), LoadSource.DATABASE)
    assert len(loader.calls) == 1


async def test_dirty_keys_are_loaded_from_the_primary_and_never_installed(
    server: fakeredis.FakeServer,
) -> None:
    rig, loader = Rig(server), Loader(version=9)
    rig.state.dirty.add(A, 9)

    await rig.fills.fill_many([A, B], GEN, loader, {})

    assert loader.calls == [{A: ReadFloor(9, primary=True), B: ANY_SOURCE}]
    assert await rig.raw(A) is None and await rig.raw(B) is not None


async def test_a_cancelled_batch_hands_its_leases_back_in_the_background(
    server: fakeredis.FakeServer,
) -> None:
    rig = Rig(server)
    started, never = asyncio.Event(), asyncio.Event()

    async def hangs(floors: Mapping[str, ReadFloor]) -> dict[str, str]:
        started.set()
        await never.wait()
        return {}

    task = asyncio.create_task(rig.fills.fill_many([A], GEN, hangs, {}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    lease = keys.namespace_lease_key(PREFIX, A, GEN)
    for _ in range(100):  # the release runs as a background task: let it
        if not await rig.client.exists(lease):
            break
        await asyncio.sleep(0)
    assert not await rig.client.exists(lease)
