"""The Redis tier of the memory context: read-through with single fills, write-through.

How the consistency protocol (DESIGN.md) maps onto this module:

* Hit: one GET of ``…:{u:<id>}:g<gen>:ctx``, decoded once (invariant: one round trip).
* Miss: a per-process single-flight per user, then one script that either returns a
  value that landed meanwhile or takes a short Redis lease, so one filler across all
  processes calls the loader (invariant 5). Losers poll briefly, then load themselves.
* Fills and write-throughs install with set-if-newer in Lua (invariants 3 and 4).
* Redis errors, timeouts, or an open breaker send the load to the loader, single-flighted
  per user as well (invariants 5 and 7). Nothing Redis raises leaves this class.
* A write that could not reach Redis leaves the user "dirty": loads for that user skip
  Redis, and the user gets a versioned invalidation marker before the breaker closes
  again; too many dirty users turn into one generation bump (invariant 7).

Generation propagation: each process re-reads the global generation every
``cache_generation_refresh_seconds`` (and on breaker recovery); write-throughs read it
fresh before writing. After a bump, other processes may keep reading the previous
generation's keys for at most that refresh period.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from prometheus_client import REGISTRY
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import RedisError

from memlayer.cache import metrics
from memlayer.cache.breaker import CircuitBreaker
from memlayer.cache.codec import decode, encode, encode_marker
from memlayer.cache.dirty import DirtyUsers
from memlayer.cache.errors import REDIS_ERRORS, CodecError, LoopStalled
from memlayer.cache.hooks import CacheHooks
from memlayer.cache.port import CacheStats, Loader
from memlayer.cache.singleflight import SingleFlight
from memlayer.cache.store import ContextStore
from memlayer.records import LoadResult, LoadSource, MemoryContext
from memlayer.settings import Settings

log = logging.getLogger("memlayer.cache")

_CACHE = LoadSource.CACHE
_DATABASE = LoadSource.DATABASE
_GENERATION_FLIGHT = "generation"  # single-flight key of the first generation read
_MEMORY_USAGE_SAMPLE = 100
_WARM_CONCURRENCY = 8
_MEMO_MAX_VALUE_BYTES = 16 * 1024


class SharedReadFailed(RedisError):
    """The shared GET this load joined failed; the load that issued it counts the failure."""


class _LeaderCancelled(Exception):
    """The load that issued a shared GET was cancelled; a joiner reads for itself."""


def _in_flight_limit(client: Any, settings: Settings) -> int | None:
    """Bound concurrent commands unless the client's own pool already queues a burst.

    redis-py's default pool, the cluster client and fakeredis raise "Too many
    connections" when a burst exceeds the pool; that must not look like an outage.
    """
    if isinstance(getattr(client, "connection_pool", None), BlockingConnectionPool):
        return None
    return settings.redis_max_connections


class ContextCache:
    """Versioned, write-through Redis cache of :class:`MemoryContext` per user."""

    __slots__ = (
        "_background",
        "_breaker",
        "_dirty",
        "_fill_wait_s",
        "_flights",
        "_flush_task",
        "_generation",
        "_hooks",
        "_jitter",
        "_lease_ms",
        "_max_bytes",
        "_memo",
        "_memo_max",
        "_poll_s",
        "_reads",
        "_recovery_task",
        "_refresh_s",
        "_refresher",
        "_store",
        "_ttl_ms",
    )

    def __init__(
        self,
        client: Any,
        settings: Settings,
        *,
        hooks: CacheHooks | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = ContextStore(
            client,
            settings.cache_key_prefix,
            settings.redis_timeout_ms / 1000,
            _in_flight_limit(client, settings),
        )
        self._hooks = hooks or CacheHooks()
        self._breaker = CircuitBreaker(
            settings.breaker_failure_threshold, settings.breaker_cooldown_seconds, clock
        )
        self._dirty = DirtyUsers(settings.dirty_users_max)
        self._flights: SingleFlight[Any] = SingleFlight()
        # GETs in flight per user: concurrent loads of one user share one Redis read.
        self._reads: dict[int, asyncio.Future[bytes | None] | None] = {}
        self._generation: int | None = None
        self._ttl_ms = settings.cache_ttl_seconds * 1000
        self._jitter = settings.cache_ttl_jitter
        self._max_bytes = settings.cache_max_value_bytes
        self._memo: dict[int, tuple[bytes, MemoryContext]] = {}
        self._memo_max = settings.cache_decoded_memo_size
        self._lease_ms = settings.cache_lease_ms
        self._fill_wait_s = settings.cache_fill_wait_ms / 1000
        self._poll_s = settings.cache_fill_poll_ms / 1000
        self._refresh_s = settings.cache_generation_refresh_seconds
        self._background: set[asyncio.Task[Any]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._recovery_task: asyncio.Task[bool] | None = None
        self._flush_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ reads

    async def load(self, user_id: int, loader: Loader) -> LoadResult:
        """The user's context: from Redis on a hit, else from ``loader()`` (then cached).

        Never raises a Redis error; exceptions of ``loader()`` propagate unchanged.
        """
        start = time.perf_counter()
        generation = self._generation
        if generation is None or not self._breaker.closed or self._dirty.pending:
            result = await self._load_slow(user_id, loader)
        else:
            try:
                raw = await self._read(user_id, generation)
            except REDIS_ERRORS as exc:
                self._redis_failed(exc)
                metrics.ERROR.inc()
                result = await self._flights.do(user_id, lambda: self._from_database(loader))
            else:
                self._breaker.record_success()
                if raw is not None:
                    memo = self._memo.get(user_id)
                    if memo is not None and memo[0] == raw:
                        context: MemoryContext | None = memo[1]
                        corrupt = None
                    else:
                        context, corrupt = self._decode_for(user_id, raw)
                    if context is not None:
                        metrics.HIT.inc()
                        metrics.LOAD_CACHE.observe(time.perf_counter() - start)
                        return LoadResult(context, _CACHE)
                else:
                    corrupt = None
                metrics.MISS.inc()
                result = await self._flights.do(
                    user_id, lambda: self._fill(user_id, generation, loader, corrupt)
                )
        elapsed = time.perf_counter() - start
        if result.source is _CACHE:
            metrics.LOAD_CACHE.observe(elapsed)
        else:
            metrics.LOAD_DATABASE.observe(elapsed)
        return result

    async def _read(self, user_id: int, generation: int) -> bytes | None:
        """One GET of the user's value, shared by every load of that user meanwhile.

        A burst of loads for one user (hundreds in the same millisecond) would otherwise
        queue hundreds of GETs behind the connection pool; the tail of that queue times
        out, and each timed-out load falls back to Postgres after the first fill has
        already finished. Joiners see the leader's value, or its error as a
        :class:`SharedReadFailed` (one Redis failure counts once for the breaker).
        """
        if user_id in self._reads:
            shared = self._reads[user_id]
            if shared is None:  # the first joiner makes the future the leader will settle
                shared = self._reads[user_id] = asyncio.get_running_loop().create_future()
            try:
                return await asyncio.shield(shared)
            except _LeaderCancelled:
                return await self._read(user_id, generation)  # read it ourselves
            except REDIS_ERRORS as exc:
                raise SharedReadFailed() from exc
        # The leader: no future unless someone joins, so an uncontended hit pays two dict
        # operations for this.
        self._reads[user_id] = None
        try:
            raw = await self._store.get(user_id, generation)
        except BaseException as exc:
            shared = self._reads.pop(user_id, None)
            if shared is not None:
                cancelled = isinstance(exc, asyncio.CancelledError)
                shared.set_exception(_LeaderCancelled() if cancelled else exc)
                shared.exception()  # retrieved, even if every joiner has gone
            raise
        shared = self._reads.pop(user_id, None)
        if shared is not None:
            shared.set_result(raw)
        return raw

    async def _load_slow(self, user_id: int, loader: Loader) -> LoadResult:
        """Loads that cannot take the one-GET path: no generation yet, breaker, dirty user."""
        if self._breaker.closed and self._generation is None:
            await self._init_generation()
        if not self._breaker.closed or user_id in self._dirty or self._generation is None:
            if not self._breaker.closed:
                self._maybe_recover()
            elif user_id in self._dirty:
                self._schedule_flush()
            metrics.BYPASS.inc()
            return await self._flights.do(user_id, lambda: self._from_database(loader))
        generation = self._generation
        try:
            raw = await self._read(user_id, generation)
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            metrics.ERROR.inc()
            return await self._flights.do(user_id, lambda: self._from_database(loader))
        self._breaker.record_success()
        context, corrupt = self._decode_for(user_id, raw)
        if context is not None:
            metrics.HIT.inc()
            return LoadResult(context, _CACHE)
        metrics.MISS.inc()
        return await self._flights.do(
            user_id, lambda: self._fill(user_id, generation, loader, corrupt)
        )

    def _decode_for(
        self, user_id: int, raw: bytes | None
    ) -> tuple[MemoryContext | None, bytes | None]:
        """(context, None) for a usable value; (None, raw) when raw must be replaced."""
        if raw is None:
            return None, None
        try:
            context = decode(raw)
        except CodecError:
            metrics.CORRUPT.inc()
            return None, raw
        if context is None:  # an invalidation marker: a plain miss
            return None, None
        if context.user_id != user_id:  # a foreign value under this user's key
            metrics.CORRUPT.inc()
            return None, raw
        self._remember(user_id, raw, context)
        return context, None

    def _remember(self, user_id: int, raw: bytes, context: MemoryContext) -> None:
        """Keep the decoded context: the next hit returning the same bytes skips decoding.

        Safe because the bytes are compared in full on every hit (the version is in
        them), and contexts are immutable. Bounded in entries and in value size.
        """
        memo = self._memo
        if self._memo_max == 0 or len(raw) > _MEMO_MAX_VALUE_BYTES:
            return
        if user_id not in memo and len(memo) >= self._memo_max:
            del memo[next(iter(memo))]  # oldest insertion first
        memo[user_id] = (raw, context)

    @staticmethod
    async def _from_database(loader: Loader) -> LoadResult:
        return LoadResult(await loader(), _DATABASE)

    async def _fill(
        self, user_id: int, generation: int, loader: Loader, corrupt: bytes | None
    ) -> LoadResult:
        """One miss per user and process: lease, load, install (or wait for the filler)."""
        if not self._breaker.closed or user_id in self._dirty:
            return await self._from_database(loader)
        token = secrets.token_hex(16).encode()
        try:
            got = await self._store.acquire(user_id, generation, token, self._lease_ms, corrupt)
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return await self._from_database(loader)
        self._breaker.record_success()
        if isinstance(got, bytes):  # filled meanwhile
            context, corrupt = self._decode_for(user_id, got)
            if context is not None:
                return LoadResult(context, _CACHE)
            return await self._load_and_fill(user_id, generation, loader, None, corrupt)
        if got:
            if self._hooks.after_lease_acquired is not None:
                await self._hooks.after_lease_acquired(user_id)
            return await self._load_and_fill(user_id, generation, loader, token, corrupt)
        return await self._wait_for_fill(user_id, generation, loader, corrupt)

    async def _wait_for_fill(
        self, user_id: int, generation: int, loader: Loader, corrupt: bytes | None
    ) -> LoadResult:
        """Another process holds the lease: poll for its value, then load ourselves."""
        if self._hooks.before_lease_wait is not None:
            await self._hooks.before_lease_wait(user_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._fill_wait_s
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self._poll_s, remaining))
            if not self._breaker.closed:
                break
            try:
                raw = await self._store.get(user_id, generation)
            except REDIS_ERRORS as exc:
                self._redis_failed(exc)
                return await self._from_database(loader)
            context, bad = self._decode_for(user_id, raw)
            if context is not None:
                metrics.WAIT_VALUE.inc()
                return LoadResult(context, _CACHE)
            corrupt = bad or corrupt
        metrics.WAIT_TIMEOUT.inc()
        return await self._load_and_fill(user_id, generation, loader, None, corrupt)

    async def _load_and_fill(
        self,
        user_id: int,
        generation: int,
        loader: Loader,
        token: bytes | None,
        corrupt: bytes | None,
    ) -> LoadResult:
        try:
            context = await loader()
        except asyncio.CancelledError:
            if token is not None:
                self._spawn(self._release_quietly(user_id, generation, token))
            raise
        except Exception:  # re-raised unchanged: the memory tier's typed errors
            # Hand the lease back so waiters elsewhere need not sit out its expiry.
            if token is not None:
                await self._release_quietly(user_id, generation, token)
            raise
        if self._hooks.before_fill is not None:
            await self._hooks.before_fill(user_id, context)
        value = self._encode_bounded(context)
        if value is None or not self._breaker.closed or user_id in self._dirty:
            if token is not None:
                self._spawn(self._release_quietly(user_id, generation, token))
            return LoadResult(context, _DATABASE)
        try:
            stored, lease = await self._store.fill(
                user_id, generation, value, self._ttl(), token, corrupt
            )
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return LoadResult(context, _DATABASE)
        self._breaker.record_success()
        if lease is False:
            metrics.FILL_LEASE_LOST.inc()
        elif stored:
            metrics.FILL_STORED.inc()
        else:
            metrics.FILL_STALE.inc()
        return LoadResult(context, _DATABASE)

    async def _release_quietly(self, user_id: int, generation: int, token: bytes) -> None:
        try:
            await self._store.release(user_id, generation, token)
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)

    def _encode_bounded(self, context: MemoryContext) -> bytes | None:
        """The value to install: the context, or a marker when it is too big to cache."""
        try:
            value = encode(context)
        except CodecError:
            log.exception("cache: context of user %s cannot be encoded", context.user_id)
            value = None
        if value is None or len(value) > self._max_bytes:
            if value is not None:
                metrics.OVERSIZE.inc()
            try:
                return encode_marker(context.version)
            except CodecError:
                return None
        return value

    def _ttl(self) -> int:
        """TTL in ms with ± jitter, so keys written together do not expire together."""
        return max(1, int(self._ttl_ms * (1.0 + self._jitter * (2.0 * random.random() - 1.0))))

    # ----------------------------------------------------------------- writes

    async def write_through(self, context: MemoryContext) -> None:
        """Install a just-committed context (set-if-newer). Never raises.

        If Redis cannot be told, the user is remembered as dirty: loads for them skip
        Redis until a versioned marker has been installed.
        """
        user_id = context.user_id
        if user_id is None:
            return
        version = context.version
        if not self._breaker.closed:
            self._defer(user_id, version)
            return
        value = self._encode_bounded(context)
        if value is None:
            return
        try:
            # Read the generation fresh: a write to a generation another process has
            # already abandoned would be invisible to readers of the new one.
            generation = await self._store.read_generation()
            self._set_generation(generation)
            if self._refresher is None:
                self._start_refresher()
            stored, _ = await self._store.fill(user_id, generation, value, self._ttl(), None, None)
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            metrics.WRITE_ERROR.inc()
            self._dirty.add(user_id, version)
            metrics.DIRTY_USERS.set(len(self._dirty))
            self._schedule_flush()
            return
        self._breaker.record_success()
        (metrics.WRITE_STORED if stored else metrics.WRITE_STALE).inc()
        if self._dirty.pending and user_id in self._dirty:
            # Redis now holds this version or newer: the older dirty entry is moot.
            self._dirty.discard(user_id, version)
            metrics.DIRTY_USERS.set(len(self._dirty))

    def _defer(self, user_id: int, version: int) -> None:
        self._dirty.add(user_id, version)
        metrics.WRITE_DEFERRED.inc()
        metrics.DIRTY_USERS.set(len(self._dirty))
        self._maybe_recover()

    async def invalidate(self, user_id: int, version: int = 0) -> None:
        """Make the next load of this user reload from the loader (ops command).

        Installs a marker at ``max(version, cached version)`` instead of deleting, so an
        in-flight fill older than what was cached cannot reinstall itself. If Redis is
        unreachable the user is remembered as dirty like a deferred write.
        """
        if not self._breaker.closed:
            self._defer(user_id, version)
            return
        try:
            generation = await self._store.read_generation()
            self._set_generation(generation)
            await self._store.invalidate(
                user_id, generation, encode_marker(version), self._ttl(), force=True
            )
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            self._dirty.add(user_id, version)
            metrics.DIRTY_USERS.set(len(self._dirty))
            self._schedule_flush()
            return
        self._breaker.record_success()

    # -------------------------------------------------------- breaker, recovery

    def _redis_failed(self, exc: BaseException) -> None:
        if isinstance(exc, SharedReadFailed):
            return  # the load that issued the read already counted this failure
        if isinstance(exc, LoopStalled):
            metrics.LOOP_STALLS.inc()  # our loop was late, not Redis: the breaker stays out
            return
        if self._breaker.record_failure():
            metrics.BREAKER_OPEN.set(1)
            log.warning("cache: Redis circuit breaker opened; loads go to the database")

    def _maybe_recover(self) -> None:
        if self._breaker.probe_due():
            self._recovery_task = self._spawn(self._probe())

    async def recover(self) -> bool:
        """Probe Redis now (ignoring the cooldown) and close the breaker if it answers.

        Normally recovery runs by itself after the cooldown; this is for ops and tests.
        Returns whether the breaker is closed afterwards.
        """
        if self._breaker.closed:
            if self._dirty.pending:
                await self._flush_quietly()
            return self._breaker.closed
        if self._breaker.probe_due(force=True):
            self._recovery_task = self._spawn(self._probe())
        if self._recovery_task is None:  # pragma: no cover - half-open implies a probe task
            return False
        return await asyncio.shield(self._recovery_task)

    async def _probe(self) -> bool:
        try:
            await self._store.ping()
            self._set_generation(await self._store.read_generation())
            await self._flush_dirty()
        except REDIS_ERRORS:
            self._breaker.probe_failed()
            return False
        # No await since _flush_dirty saw the dirty set empty: nothing can slip in.
        self._breaker.close()
        metrics.BREAKER_OPEN.set(0)
        log.warning("cache: Redis answers again; circuit breaker closed")
        self._start_refresher()
        return True

    async def _flush_dirty(self) -> None:
        """Invalidate every dirty user (or bump the generation); raises Redis errors."""
        while self._dirty.pending:
            if self._dirty.take_overflow():
                try:
                    generation = await self._store.bump_generation()
                except REDIS_ERRORS:
                    self._dirty.mark_overflow()
                    raise
                self._set_generation(generation)
                log.warning("cache: too many writes missed Redis; generation now %d", generation)
            generation = self._generation if self._generation is not None else 0
            for user_id, version in self._dirty.snapshot():
                await self._store.invalidate(
                    user_id, generation, encode_marker(version), self._ttl(), force=False
                )
                self._dirty.discard(user_id, version)
            metrics.DIRTY_USERS.set(len(self._dirty))

    def _schedule_flush(self) -> None:
        """With the breaker closed, retry invalidating dirty users in the background."""
        if self._breaker.closed and (self._flush_task is None or self._flush_task.done()):
            self._flush_task = self._spawn(self._flush_quietly())

    async def _flush_quietly(self) -> None:
        try:
            await self._flush_dirty()
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)

    # ------------------------------------------------------------- generation

    def _set_generation(self, generation: int) -> None:
        if generation != self._generation:
            self._generation = generation
            metrics.GENERATION.set(generation)

    async def _init_generation(self) -> None:
        await self._flights.do(_GENERATION_FLIGHT, self._read_generation_once)

    async def _read_generation_once(self) -> None:
        if self._generation is not None:
            return
        try:
            generation = await self._store.read_generation()
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return
        self._breaker.record_success()
        self._set_generation(generation)
        self._start_refresher()

    def _start_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = self._spawn(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        """Pick up generation bumps of other processes; drive recovery when idle."""
        while True:
            await asyncio.sleep(self._refresh_s)
            if not self._breaker.closed:
                self._maybe_recover()
                continue
            try:
                generation = await self._store.read_generation()
            except REDIS_ERRORS as exc:
                self._redis_failed(exc)
                continue
            self._breaker.record_success()
            self._set_generation(generation)
            if self._dirty.pending:
                self._schedule_flush()

    @property
    def generation(self) -> int | None:
        """The generation this process currently reads (None before the first load)."""
        return self._generation

    # ------------------------------------------------------------ operations

    @property
    def breaker_open(self) -> bool:
        return not self._breaker.closed

    async def ping(self) -> bool:
        try:
            return await self._store.ping()
        except REDIS_ERRORS:
            return False

    async def stats(self) -> CacheStats:
        """Counters of this process, plus a SCAN of this prefix's keys (never KEYS)."""
        counts = {
            result: int(
                REGISTRY.get_sample_value("memlayer_cache_requests_total", {"result": result}) or 0
            )
            for result in ("hit", "miss", "error", "bypass")
        }
        total = sum(counts.values())
        n_keys: int | None = 0
        sample: list[bytes] = []
        try:
            async for key in self._store.iter_keys():
                n_keys += 1  # type: ignore[operator]
                if len(sample) < _MEMORY_USAGE_SAMPLE:
                    sample.append(key)
        except REDIS_ERRORS:
            n_keys = None
        bytes_used: int | None = None
        if sample and n_keys:
            try:
                sizes = [await self._store.memory_usage(key) or 0 for key in sample]
                bytes_used = int(sum(sizes) / len(sizes) * n_keys)
            except REDIS_ERRORS:  # e.g. fakeredis has no MEMORY USAGE
                bytes_used = None
        elif n_keys == 0:
            bytes_used = 0
        return CacheStats(
            enabled=True,
            hits=counts["hit"],
            misses=counts["miss"],
            errors=counts["error"],
            bypasses=counts["bypass"],
            hit_ratio=counts["hit"] / total if total else None,
            keys=n_keys,
            bytes_used=bytes_used,
            breaker_state=str(self._breaker.state),
            generation=self._generation,
            dirty_users=len(self._dirty),
        )

    async def warm(self, user_ids: Iterable[int], loader_for: Callable[[int], Loader]) -> int:
        """Load (and so cache) each user; returns how many had to come from the loader."""
        gate = asyncio.Semaphore(_WARM_CONCURRENCY)

        async def one(user_id: int) -> bool:
            async with gate:
                result = await self.load(user_id, loader_for(user_id))
            return result.source is _DATABASE

        results = await asyncio.gather(*(one(u) for u in user_ids))
        return sum(results)

    # -------------------------------------------------------------- lifetime

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def aclose(self) -> None:
        """Stop background tasks. The client belongs to the app's lifespan, not to us."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refresher = None
