"""The Redis tier of the memory context: read-through with single fills, write-through.

How the consistency protocol (DESIGN.md) maps onto the tier; this class composes the
mechanisms, each in its own module, and decides when each one runs:

* Hit: one GET of ``…:{u:<id>}:g<gen>:ctx`` (invariant: one round trip), shared by
  concurrent loads of the user (``shared_read``), decoded once per distinct value
  (``memo``).
* Miss: a per-process single-flight per user, then the fill protocol (``fill``): one
  filler across all processes through a short Redis lease, set-if-newer installs, losers
  poll briefly then load themselves (invariants 4 and 5).
* Redis errors, timeouts or an open breaker send the load to the loader, single-flighted
  per user as well (invariants 5 and 7). Nothing Redis raises leaves this class.
* A write that could not reach Redis leaves the user "dirty": loads for that user skip
  Redis, and the user gets a versioned invalidation marker before the breaker closes
  again; too many dirty users turn into one generation bump (``recovery``, invariant 7).
* What the process believes about Redis (generation, breaker, dirty set) changes only
  through ``state.TierState``, which keeps the gauges and tells subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from redis.asyncio import BlockingConnectionPool

from memlayer.cache import metrics
from memlayer.cache.background import BackgroundTasks
from memlayer.cache.breaker import CircuitBreaker
from memlayer.cache.client import RedisClient
from memlayer.cache.codec import decode_for, encode, encode_marker
from memlayer.cache.dirty import DirtyUsers
from memlayer.cache.errors import REDIS_ERRORS, CodecError
from memlayer.cache.fill import FillProtocol
from memlayer.cache.hooks import CacheHooks
from memlayer.cache.memo import DecodedMemo
from memlayer.cache.port import Loader
from memlayer.cache.recovery import Recovery
from memlayer.cache.shared_read import SharedReads
from memlayer.cache.singleflight import SingleFlight
from memlayer.cache.state import Subscriber, TierState
from memlayer.cache.stats import CacheStats, RequestCounts, key_usage
from memlayer.cache.store import ContextStore
from memlayer.cache.ttl import JitteredTtl
from memlayer.records import LoadResult, LoadSource, MemoryContext
from memlayer.settings import Settings

log = logging.getLogger("memlayer.cache")

_CACHE = LoadSource.CACHE
_DATABASE = LoadSource.DATABASE
_WARM_CONCURRENCY = 8


def _in_flight_limit(client: RedisClient, settings: Settings) -> int | None:
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
        "_fills",
        "_flights",
        "_max_bytes",
        "_memo",
        "_reads",
        "_recovery",
        "_state",
        "_store",
        "_ttl",
    )

    def __init__(
        self,
        client: RedisClient,
        settings: Settings,
        *,
        hooks: CacheHooks | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        store = ContextStore(
            client,
            settings.cache_key_prefix,
            settings.redis_timeout_ms / 1000,
            _in_flight_limit(client, settings),
        )
        breaker = CircuitBreaker(
            settings.breaker_failure_threshold, settings.breaker_cooldown_seconds, clock
        )
        state = TierState(breaker, DirtyUsers(settings.dirty_users_max))
        background = BackgroundTasks()
        ttl = JitteredTtl(settings.cache_ttl_seconds * 1000, settings.cache_ttl_jitter)
        memo = DecodedMemo(decode_for, settings.cache_decoded_memo_size)
        self._store = store
        self._state = state
        self._breaker = breaker  # read on every load: a plain attribute of ours
        self._background = background
        self._ttl = ttl
        self._max_bytes = settings.cache_max_value_bytes
        self._memo = memo
        self._reads: SharedReads[int] = SharedReads(store.get)
        self._flights: SingleFlight[LoadResult] = SingleFlight()
        self._fills: FillProtocol[int, MemoryContext] = FillProtocol(
            store,
            state,
            background,
            hooks or CacheHooks(),
            decode=memo.decode,
            encode=self._installable,
            ttl=ttl,
            lease_ms=settings.cache_lease_ms,
            wait_s=settings.cache_fill_wait_ms / 1000,
            poll_s=settings.cache_fill_poll_ms / 1000,
        )
        self._recovery = Recovery(
            store, state, background, ttl, settings.cache_epoch_check_ms / 1000
        )

    # ------------------------------------------------------------------ reads

    async def load(self, user_id: int, loader: Loader) -> LoadResult:
        """The user's context: from Redis on a hit, else from ``loader()`` (then cached).

        The one read path: read → decode → hit, or miss → fill; a Redis error or a
        bypass goes to the loader. Never raises a Redis error; exceptions of
        ``loader()`` propagate unchanged.
        """
        start = time.perf_counter()
        state = self._state
        generation = state.generation
        if generation is None or not self._breaker.closed or state.dirty.pending:
            generation = await self._generation_to_read(user_id)
        if generation is None:
            metrics.BYPASS.inc()
            result = await self._flights.do(user_id, lambda: self._from_database(loader))
        else:
            try:
                raw = await self._reads.read(user_id, generation)
            except REDIS_ERRORS as exc:
                state.redis_failed(exc)
                metrics.ERROR.inc()
                result = await self._flights.do(user_id, lambda: self._from_database(loader))
            else:
                self._breaker.record_success()
                corrupt = None
                if raw is not None:
                    try:
                        context = self._memo.decode(user_id, raw)
                    except CodecError:
                        context, corrupt = None, raw
                    if context is not None:
                        metrics.HIT.inc()
                        metrics.LOAD_CACHE.observe(time.perf_counter() - start)
                        return LoadResult(context, _CACHE)
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

    async def _generation_to_read(self, user_id: int) -> int | None:
        """The slow gate: learn the generation first; None when Redis must be bypassed."""
        state = self._state
        if self._breaker.closed and state.generation is None:
            await self._recovery.read_first_generation()
        if not self._breaker.closed:
            self._recovery.probe_if_due()
            return None
        if user_id in state.dirty:
            self._recovery.schedule_flush()
            return None
        return state.generation

    @staticmethod
    async def _from_database(loader: Loader) -> LoadResult:
        return LoadResult(await loader(), _DATABASE)

    async def _fill(
        self, user_id: int, generation: int, loader: Loader, corrupt: bytes | None
    ) -> LoadResult:
        fetched = await self._fills.fill(user_id, generation, loader, corrupt)
        return LoadResult(fetched.value, fetched.source)

    def _installable(self, context: MemoryContext) -> bytes | None:
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
        state = self._state
        if not self._breaker.closed:
            self._defer(user_id, version)
            return
        value = self._installable(context)
        if value is None:
            return
        try:
            # Read the generation fresh: a write to a generation another process has
            # already abandoned would be invisible to readers of the new one.
            generation = await self._store.read_generation()
            state.set_generation(generation)
            self._recovery.keep_generation_fresh()
            result = await self._store.fill(user_id, generation, value, self._ttl(), None, None)
        except REDIS_ERRORS as exc:
            state.redis_failed(exc)
            metrics.WRITE_ERROR.inc()
            state.mark_dirty(user_id, version)
            self._recovery.schedule_flush()
            return
        state.redis_answered()
        (metrics.WRITE_STORED if result.stored else metrics.WRITE_STALE).inc()
        if state.dirty.pending and user_id in state.dirty:
            # Redis now holds this version or newer: the older dirty entry is moot.
            state.mark_clean(user_id, version)

    def _defer(self, user_id: int, version: int) -> None:
        self._state.mark_dirty(user_id, version)
        metrics.WRITE_DEFERRED.inc()
        self._recovery.probe_if_due()

    async def invalidate(self, user_id: int, version: int = 0) -> None:
        """Make the next load of this user reload from the loader (ops command).

        Installs a marker at ``max(version, cached version)`` instead of deleting, so an
        in-flight fill older than what was cached cannot reinstall itself. If Redis is
        unreachable the user is remembered as dirty like a deferred write.
        """
        state = self._state
        if not self._breaker.closed:
            self._defer(user_id, version)
            return
        try:
            generation = await self._store.read_generation()
            state.set_generation(generation)
            await self._store.invalidate(
                user_id, generation, encode_marker(version), self._ttl(), force=True
            )
        except REDIS_ERRORS as exc:
            state.redis_failed(exc)
            state.mark_dirty(user_id, version)
            self._recovery.schedule_flush()
            return
        state.redis_answered()

    # ------------------------------------------------------------ operations

    async def recover(self) -> bool:
        """Probe Redis now (ignoring the cooldown) and close the breaker if it answers.

        Normally recovery runs by itself after the cooldown; this is for ops and tests.
        Returns whether the breaker is closed afterwards.
        """
        return await self._recovery.recover()

    @property
    def generation(self) -> int | None:
        """The generation this process currently reads (None before the first load)."""
        return self._state.generation

    @property
    def breaker_open(self) -> bool:
        return not self._breaker.closed

    @property
    def client(self) -> RedisClient:
        """The Redis client this cache sends through (the app's lifespan owns it)."""
        return self._store.client

    @property
    def key_prefix(self) -> str:
        """The prefix of every key of this cache (build keys with ``cache.keys``)."""
        return self._store.prefix

    def subscribe(self, subscriber: Subscriber) -> None:
        """Be told of every generation change and breaker transition (see ``state``)."""
        self._state.subscribe(subscriber)

    async def ping(self) -> bool:
        try:
            return await self._store.ping()
        except REDIS_ERRORS:
            return False

    async def stats(self) -> CacheStats:
        """Counters of this process, plus a SCAN of this prefix's keys (never KEYS)."""
        usage = await key_usage(self._store)
        return CacheStats(
            enabled=True,
            requests=RequestCounts.now(),
            keys=usage.keys,
            bytes_used=usage.bytes_used,
            breaker_state=str(self._breaker.state),
            generation=self._state.generation,
            dirty_users=len(self._state.dirty),
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

    async def aclose(self) -> None:
        """Stop background tasks. The client belongs to the app's lifespan, not to us."""
        await self._background.cancel_all()
