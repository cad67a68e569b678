"""The fill protocol: after a miss, one load per key across all processes (invariants 4, 5).

A miss takes a short Redis lease in the same script that re-checks the value, so one
filler across all processes calls the loader; it installs what it loaded with
set-if-newer and releases the lease by token in the same script. A load that finds the
lease taken polls briefly for the filler's value, then loads (and fills) itself rather
than fail. Redis errors, an open breaker or a dirty key send the load to the loader.
Every load is told its floor (``records.ReadFloor``): the version of a marker the lease
script found, or of a write this process acknowledged, so a lagging read replica's
older answer is discarded rather than returned or cached.

Nothing here knows what a memory context is: keys, values, their codec and the store's
commands come in from the composing cache, so other key families (a LangGraph store's
items) can use the same protocol. The per-process single-flight in front of it is the
caller's.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar

from memlayer.cache import metrics
from memlayer.cache.background import BackgroundTasks
from memlayer.cache.errors import REDIS_ERRORS, CodecError
from memlayer.cache.hooks import FillHooks
from memlayer.cache.state import TierState
from memlayer.records import LoadSource, ReadFloor

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)
V = TypeVar("V")

# ---------------------------------------------------------------------- outcomes


class LeaseState(Enum):
    FILLED = "filled"  # a complete value landed meanwhile: use it, no lease taken
    ACQUIRED = "acquired"  # this process holds the fill lease: load and install
    BUSY = "busy"  # another filler holds the lease: wait for its value


@dataclass(frozen=True, slots=True)
class LeaseAttempt:
    """What the lease script found: a value, the lease, or someone else's lease."""

    state: LeaseState
    value: bytes | None = None  # the complete value, when ``state`` is FILLED
    floor: int = 0  # the version of a marker found in place of a value (0: none)


LEASE_ACQUIRED = LeaseAttempt(LeaseState.ACQUIRED)
LEASE_BUSY = LeaseAttempt(LeaseState.BUSY)


class LeaseRelease(Enum):
    RELEASED = "released"  # our lease was still ours and is gone now
    LOST = "lost"  # it had expired (and may be someone else's now): left alone
    NOT_HELD = "not_held"  # the install held no lease (a write-through)


@dataclass(frozen=True, slots=True)
class FillResult:
    """What a set-if-newer install did: stored or refused as stale, and the lease."""

    stored: bool
    lease: LeaseRelease


@dataclass(frozen=True, slots=True)
class Fetched(Generic[V]):
    """A value and the tier that served it."""

    value: V
    source: LoadSource


class FillStore(Protocol[K_contra]):
    """The round trips the protocol needs, for one key family (``store.ContextStore``)."""

    async def get(self, key: K_contra, generation: int) -> bytes | None: ...

    async def acquire(
        self, key: K_contra, generation: int, token: bytes, lease_ms: int, corrupt: bytes | None
    ) -> LeaseAttempt: ...

    async def fill(
        self,
        key: K_contra,
        generation: int,
        value: bytes,
        ttl_ms: int,
        token: bytes | None,
        corrupt: bytes | None,
    ) -> FillResult: ...

    async def release(self, key: K_contra, generation: int, token: bytes) -> None: ...


# ---------------------------------------------------------------------- protocol


Load = Callable[[ReadFloor], Awaitable[V]]


class FillProtocol(Generic[K, V]):
    """Lease, load, install — or wait for another process's install."""

    __slots__ = (
        "_background",
        "_decode",
        "_encode",
        "_hooks",
        "_lease_ms",
        "_poll_s",
        "_state",
        "_store",
        "_ttl",
        "_wait_s",
    )

    def __init__(
        self,
        store: FillStore[K],
        state: TierState,
        background: BackgroundTasks,
        hooks: FillHooks[K, V],
        *,
        decode: Callable[[K, bytes], V | None],
        encode: Callable[[V], bytes | None],
        ttl: Callable[[], int],
        lease_ms: int,
        wait_s: float,
        poll_s: float,
    ) -> None:
        """``decode`` raises CodecError for a value to replace and returns None for a
        marker; ``encode`` gives the bytes to install (None: install nothing)."""
        self._store = store
        self._state = state
        self._background = background
        self._hooks = hooks
        self._decode = decode
        self._encode = encode
        self._ttl = ttl
        self._lease_ms = lease_ms
        self._wait_s = wait_s
        self._poll_s = poll_s

    async def fill(
        self,
        key: K,
        generation: int,
        loader: Load[V],
        corrupt: bytes | None,
    ) -> Fetched[V]:
        """The value after a miss. ``corrupt``: the bytes the reader found unusable."""
        state = self._state
        if state.bypasses(key):
            return Fetched(await loader(state.floor_for(key)), LoadSource.DATABASE)
        token = secrets.token_hex(16).encode()
        try:
            attempt = await self._store.acquire(key, generation, token, self._lease_ms, corrupt)
        except REDIS_ERRORS as exc:
            state.redis_failed(exc)
            return Fetched(await loader(state.floor_for(key)), LoadSource.DATABASE)
        state.redis_answered()
        floor = state.floor_for(key, attempt.floor)
        if attempt.state is LeaseState.FILLED and attempt.value is not None:
            found, corrupt = attempt.value, None
            try:
                value = self._decode(key, found)
            except CodecError:
                value, corrupt = None, found
            if value is not None:
                return Fetched(value, LoadSource.CACHE)
            return await self._load_and_install(key, generation, loader, floor, None, corrupt)
        if attempt.state is LeaseState.ACQUIRED:
            if self._hooks.after_lease_acquired is not None:
                await self._hooks.after_lease_acquired(key)
            return await self._load_and_install(key, generation, loader, floor, token, corrupt)
        return await self._wait_for_fill(key, generation, loader, floor, corrupt)

    async def _wait_for_fill(
        self,
        key: K,
        generation: int,
        loader: Load[V],
        floor: ReadFloor,
        corrupt: bytes | None,
    ) -> Fetched[V]:
        """Another process holds the lease: poll for its value, then load ourselves."""
        if self._hooks.before_lease_wait is not None:
            await self._hooks.before_lease_wait(key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self._poll_s, remaining))
            if not self._state.breaker.closed:
                break
            try:
                raw = await self._store.get(key, generation)
            except REDIS_ERRORS as exc:
                self._state.redis_failed(exc)
                return Fetched(await loader(floor), LoadSource.DATABASE)
            if raw is None:
                continue
            try:
                value = self._decode(key, raw)
            except CodecError:
                corrupt = raw
                continue
            if value is not None:
                metrics.WAIT_VALUE.inc()
                return Fetched(value, LoadSource.CACHE)
        metrics.WAIT_TIMEOUT.inc()
        return await self._load_and_install(key, generation, loader, floor, None, corrupt)

    async def _load_and_install(
        self,
        key: K,
        generation: int,
        loader: Load[V],
        floor: ReadFloor,
        token: bytes | None,
        corrupt: bytes | None,
    ) -> Fetched[V]:
        try:
            value = await loader(floor)
        except asyncio.CancelledError:
            if token is not None:
                self._background.spawn(self._release_quietly(key, generation, token))
            raise
        except Exception:  # re-raised unchanged: the loader's own typed errors
            # Hand the lease back so waiters elsewhere need not sit out its expiry.
            if token is not None:
                await self._release_quietly(key, generation, token)
            raise
        if self._hooks.before_fill is not None:
            await self._hooks.before_fill(key, value)
        encoded = self._encode(value)
        if encoded is None or self._state.bypasses(key):
            if token is not None:
                self._background.spawn(self._release_quietly(key, generation, token))
            return Fetched(value, LoadSource.DATABASE)
        try:
            result = await self._store.fill(key, generation, encoded, self._ttl(), token, corrupt)
        except REDIS_ERRORS as exc:
            self._state.redis_failed(exc)
            return Fetched(value, LoadSource.DATABASE)
        self._state.redis_answered()
        if result.lease is LeaseRelease.LOST:
            metrics.FILL_LEASE_LOST.inc()
        elif result.stored:
            metrics.FILL_STORED.inc()
        else:
            metrics.FILL_STALE.inc()
        return Fetched(value, LoadSource.DATABASE)

    async def _release_quietly(self, key: K, generation: int, token: bytes) -> None:
        try:
            await self._store.release(key, generation, token)
        except REDIS_ERRORS as exc:
            self._state.redis_failed(exc)
