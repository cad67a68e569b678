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
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from memlayer.cache import metrics
from memlayer.cache.background import BackgroundTasks
from memlayer.cache.breaker import CircuitBreaker
from memlayer.cache.errors import REDIS_ERRORS, CodecError
from memlayer.cache.hooks import FillHooks
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


# The FILL script's lease reply: 1 held and released, 0 lost, -1 none held.
_LEASE_REPLIES = {1: LeaseRelease.RELEASED, 0: LeaseRelease.LOST, -1: LeaseRelease.NOT_HELD}


def lease_attempt(reply: Any) -> LeaseAttempt:
    """The ACQUIRE script's reply (``scripts.ACQUIRE``) as a named outcome."""
    if isinstance(reply, bytes):
        return LeaseAttempt(LeaseState.FILLED, reply)
    acquired, floor = int(reply[0]), int(reply[1])
    if floor == 0:
        return LEASE_ACQUIRED if acquired == 1 else LEASE_BUSY
    return LeaseAttempt(LeaseState.ACQUIRED if acquired == 1 else LeaseState.BUSY, None, floor)


def fill_result(reply: Any) -> FillResult:
    """The FILL script's reply (``scripts.FILL``) as a named outcome."""
    stored, lease = reply
    return FillResult(int(stored) == 1, _LEASE_REPLIES[int(lease)])


class FillState(Protocol):
    """What the protocol reads and tells of the tier's state: ``state.TierState``, or a
    key family's view of it (``family_state.FamilyState``: same breaker, own dirty keys)."""

    @property
    def breaker(self) -> CircuitBreaker: ...

    def bypasses(self, key: Any) -> bool: ...

    def floor_for(self, key: Any, marker: int = 0) -> ReadFloor: ...

    def redis_failed(self, exc: BaseException) -> None: ...

    def redis_answered(self) -> None: ...


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
        state: FillState,
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


# ---------------------------------------------------------------------- batches


class BatchFillStore(FillStore[K_contra], Protocol[K_contra]):
    """The same round trips for many keys of one family at once (pipelined)."""

    async def get_many(self, keys: Sequence[K_contra], generation: int) -> list[bytes | None]: ...

    async def acquire_many(
        self,
        keys: Sequence[K_contra],
        generation: int,
        tokens: Sequence[bytes],
        lease_ms: int,
        corrupt: Sequence[bytes | None],
    ) -> list[LeaseAttempt]: ...

    async def fill_many(
        self,
        installs: Sequence[tuple[K_contra, bytes, bytes | None, bytes | None]],
        generation: int,
        ttl_ms: int,
    ) -> list[FillResult]:
        """``installs``: (key, value, lease token or None, corrupt bytes or None)."""
        ...


# Loads many keys from the database at once; each key's floor says what it must see.
LoadMany = Callable[[Mapping[K, ReadFloor]], Awaitable[Mapping[K, V]]]


@dataclass(frozen=True, slots=True)
class _ToLoad:
    floor: ReadFloor
    token: bytes | None  # our lease, if we hold one
    corrupt: bytes | None  # what the reader found unusable (replaced unconditionally)


class BatchFillProtocol(FillProtocol[K, V]):
    """:class:`FillProtocol` for the misses of a whole batch: each step is one round trip
    for every key (leases, installs, polls), and every key that needs the database is
    loaded by ONE call of the loader (one statement), not one per key.

    Per key the rules are the single-key protocol's: a complete value found by the lease
    script is used; a held lease means load and install set-if-newer; someone else's
    lease means poll for its value, then load and install without a lease.
    """

    __slots__ = ("_batch",)

    def __init__(
        self,
        store: BatchFillStore[K],
        state: FillState,
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
        super().__init__(
            store,
            state,
            background,
            hooks,
            decode=decode,
            encode=encode,
            ttl=ttl,
            lease_ms=lease_ms,
            wait_s=wait_s,
            poll_s=poll_s,
        )
        self._batch = store

    async def fill_many(
        self,
        keys: Sequence[K],
        generation: int,
        load: LoadMany[K, V],
        corrupt: Mapping[K, bytes | None],
    ) -> dict[K, Fetched[V]]:
        """The value of every key after a miss. ``corrupt``: bytes readers found unusable."""
        state = self._state
        fetched: dict[K, Fetched[V]] = {}
        direct: dict[K, ReadFloor] = {}  # loaded, never installed (bypass, Redis failed)
        to_load: dict[K, _ToLoad] = {}
        busy: dict[K, _ToLoad] = {}
        leased = []
        for key in keys:
            if state.bypasses(key):
                direct[key] = state.floor_for(key)
            else:
                leased.append(key)
        if leased:
            tokens = [secrets.token_hex(16).encode() for _ in leased]
            try:
                attempts = await self._batch.acquire_many(
                    leased, generation, tokens, self._lease_ms, [corrupt.get(k) for k in leased]
                )
            except REDIS_ERRORS as exc:
                state.redis_failed(exc)
                direct.update((key, state.floor_for(key)) for key in leased)
            else:
                state.redis_answered()
                for key, token, attempt in zip(leased, tokens, attempts, strict=True):
                    floor = state.floor_for(key, attempt.floor)
                    if attempt.state is LeaseState.FILLED and attempt.value is not None:
                        found, bad = attempt.value, None
                        try:
                            value = self._decode(key, found)
                        except CodecError:
                            value, bad = None, found
                        if value is not None:
                            fetched[key] = Fetched(value, LoadSource.CACHE)
                        else:
                            to_load[key] = _ToLoad(floor, None, bad)
                    elif attempt.state is LeaseState.ACQUIRED:
                        if self._hooks.after_lease_acquired is not None:
                            await self._hooks.after_lease_acquired(key)
                        to_load[key] = _ToLoad(floor, token, corrupt.get(key))
                    else:
                        busy[key] = _ToLoad(floor, None, corrupt.get(key))
        jobs = []
        if direct or to_load:
            jobs.append(self._load_and_install_many(generation, load, direct, to_load))
        if busy:
            jobs.append(self._wait_for_fills(generation, load, busy))
        # Both run to their end (each releases its own leases); the first error wins.
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        for outcome in outcomes:
            fetched.update(outcome)  # type: ignore[arg-type]
        return fetched

    async def _wait_for_fills(
        self, generation: int, load: LoadMany[K, V], busy: dict[K, _ToLoad]
    ) -> dict[K, Fetched[V]]:
        """Other processes hold the leases: poll for their values, then load the rest."""
        if self._hooks.before_lease_wait is not None:
            for key in busy:
                await self._hooks.before_lease_wait(key)
        out: dict[K, Fetched[V]] = {}
        waiting = dict(busy)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        while waiting and (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self._poll_s, remaining))
            if not self._state.breaker.closed:
                break
            keys = list(waiting)
            try:
                raws = await self._batch.get_many(keys, generation)
            except REDIS_ERRORS as exc:
                self._state.redis_failed(exc)
                direct = {key: waiting[key].floor for key in keys}
                return out | await self._load_and_install_many(generation, load, direct, {})
            for key, raw in zip(keys, raws, strict=True):
                if raw is None:
                    continue
                try:
                    value = self._decode(key, raw)
                except CodecError:
                    waiting[key] = _ToLoad(waiting[key].floor, None, raw)
                    continue
                if value is not None:
                    metrics.WAIT_VALUE.inc()
                    out[key] = Fetched(value, LoadSource.CACHE)
                    del waiting[key]
        if waiting:
            metrics.WAIT_TIMEOUT.inc(len(waiting))
            out.update(await self._load_and_install_many(generation, load, {}, waiting))
        return out

    async def _load_and_install_many(
        self,
        generation: int,
        load: LoadMany[K, V],
        direct: Mapping[K, ReadFloor],
        to_load: Mapping[K, _ToLoad],
    ) -> dict[K, Fetched[V]]:
        floors = dict(direct)
        floors.update((key, item.floor) for key, item in to_load.items())
        held = [(key, item.token) for key, item in to_load.items() if item.token is not None]
        try:
            values = await load(floors)
        except asyncio.CancelledError:
            for key, token in held:
                self._background.spawn(self._release_quietly(key, generation, token))
            raise
        except Exception:  # re-raised unchanged: the loader's own typed errors
            for key, token in held:  # hand the leases back: waiters need not sit them out
                await self._release_quietly(key, generation, token)
            raise
        out = {key: Fetched(values[key], LoadSource.DATABASE) for key in floors}
        installs: list[tuple[K, bytes, bytes | None, bytes | None]] = []
        for key, item in to_load.items():
            value = values[key]
            if self._hooks.before_fill is not None:
                await self._hooks.before_fill(key, value)
            encoded = self._encode(value)
            if encoded is None or self._state.bypasses(key):
                if item.token is not None:
                    self._background.spawn(self._release_quietly(key, generation, item.token))
                continue
            installs.append((key, encoded, item.token, item.corrupt))
        if not installs:
            return out
        try:
            results = await self._batch.fill_many(installs, generation, self._ttl())
        except REDIS_ERRORS as exc:
            self._state.redis_failed(exc)
            return out
        self._state.redis_answered()
        for result in results:
            if result.lease is LeaseRelease.LOST:
                metrics.FILL_LEASE_LOST.inc()
            elif result.stored:
                metrics.FILL_STORED.inc()
            else:
                metrics.FILL_STALE.inc()
        return out
