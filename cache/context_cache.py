"""The Redis tier of the memory context: read-through with single fills, write-through.

How the consistency protocol (docs/architecture.md) maps onto the tier; this class composes the
mechanisms, each in its own module, and decides when each one runs:

* Near hit: a context this process read from Redis and Redis still vouches for, served
  from process memory with no round trip and no await (``near``). Only while the
  invalidation link is established (``near_tier`` attaches it) and the tier is usable, and
  never older than a write this process acknowledged. Dirty users never get here.
* Hit: one GET of ``…:{u:<id>}:g<gen>:ctx`` (invariant: one round trip), shared by
  concurrent loads of the user (``shared_read``). The load that sends the GET takes a
  near-cache fill ticket first and settles the value into the near-cache; it is served
  from there later only if no invalidation of the key came while the GET was out. The
  near-cache is also the memo of decoded values: byte-identical values are decoded once.
* Miss: a per-process single-flight per user, then the fill protocol (``fill``): one
  filler across all processes through a short Redis lease, set-if-newer installs, losers
  poll briefly then load themselves (invariants 4 and 5).
* Redis errors, timeouts or an open breaker send the load to the loader, single-flighted
  per user as well (invariants 5 and 7). Nothing Redis raises leaves this class.
* A write that could not reach Redis leaves the user "dirty": loads for that user skip
  Redis, and the user gets a versioned invalidation marker before the breaker closes
  again; too many dirty users turn into one turnover (``recovery``, invariant 7). Other
  processes learn of such a write from the outbox in Postgres, whose drainer installs
  markers through :meth:`ContextCache.install_markers`; :meth:`ContextCache.write_through`
  says whether Redis holds the write, so the writer can clear its outbox row.
* Redis that lost data is noticed by the epoch watch and the cache turns over to a
  higher generation (``epoch``); the generation never goes backwards.
* Once a write is acknowledged, no later load joins a read or a load that began before
  it (``shared_read``/``singleflight`` forget the user), the near-cache's entry is evicted
  (after Redis answered the write, whatever it answered), and database loads are told
  the versions they must at least see (a lagging replica's answer is discarded).
* What the process believes about Redis (generation, breaker, dirty set, recent
  writes) changes only through ``state.TierState``, which keeps the gauges and tells
  subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import RedisCluster

from memlayer.cache import metrics
from memlayer.cache.background import BackgroundTasks
from memlayer.cache.breaker import CircuitBreaker
from memlayer.cache.client import RedisClient
from memlayer.cache.codec import (
    COMPLETE,
    HEADER_LEN,
    MARKER,
    SCHEMA,
    decode_for,
    encode,
    encode_marker,
)
from memlayer.cache.dirty import DirtyUsers
from memlayer.cache.epoch import EpochWatch, InMemoryFloor, TurnoverReason
from memlayer.cache.errors import REDIS_ERRORS, CodecError
from memlayer.cache.fill import FillProtocol
from memlayer.cache.hooks import CacheHooks
from memlayer.cache.invalidation import InvalidationLink
from memlayer.cache.keys import CONTEXT_FAMILY, EntityKey
from memlayer.cache.near import FillTicket, NearCache
from memlayer.cache.near_recheck import Rechecker
from memlayer.cache.port import GenerationFloor, Loader, MarkerInstall, WriteThrough
from memlayer.cache.recent import RecentVersions
from memlayer.cache.recovery import Recovery
from memlayer.cache.shared_read import SharedReads, SharedResults
from memlayer.cache.singleflight import SingleFlight
from memlayer.cache.state import Subscriber, TierState
from memlayer.cache.stats import CacheStats, RequestCounts, key_usage
from memlayer.cache.store import ContextStore
from memlayer.cache.tier import SharedTier
from memlayer.cache.ttl import JitteredTtl
from memlayer.records import LoadResult, LoadSource, MemoryContext
from memlayer.settings import Settings

log = logging.getLogger("memlayer.cache")

_NEAR = LoadSource.NEAR
_CACHE = LoadSource.CACHE
_DATABASE = LoadSource.DATABASE
_WARM_CONCURRENCY = 8
_PING_ATTEMPTS = 3  # readiness probes: see ContextCache.ping
_COMPLETE_INT = COMPLETE[0]
_MARKER_INT = MARKER[0]
# Sampled near hits re-read at once, at most (more are skipped and counted): a re-check
# is a GET plus, on a difference, a barrier on the link; it must never pile up.

# What a (shared) GET hands back: the bytes, and the near-cache ticket taken before it was
# sent (None when the near-cache is not serving: nothing read then may be served later).
_Read = tuple[bytes | None, FillTicket | None]
# Every family's values carry their version as ``.version`` (contexts, store namespaces).
_version_of: Callable[[Any], int] = attrgetter("version")


@dataclass(frozen=True, slots=True)
class CachedVersion:
    """What Redis holds for a user, from the value's header alone (consistency checks)."""

    version: int
    complete: bool  # False: an invalidation marker (readers miss)


def _parse_header(raw: bytes | None) -> CachedVersion | None:
    """None for nothing servable: absent, or not a value of ours (it would be replaced)."""
    if raw is None or len(raw) < HEADER_LEN or raw[0] != SCHEMA[0]:
        return None
    digits, flag = raw[1:21], raw[21]
    if not digits.isdigit() or flag not in (_COMPLETE_INT, _MARKER_INT):
        return None
    return CachedVersion(int(digits), flag == _COMPLETE_INT)


def _complete_version(raw: bytes) -> int | None:
    """The version of a complete value; None for a marker or anything else (re-checks)."""
    cached = _parse_header(raw)
    return cached.version if cached is not None and cached.complete else None


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
        "_epoch",
        "_fills",
        "_flights",
        "_link",
        "_max_bytes",
        "_near",
        "_plain_reads",
        "_reads",
        "_rechecker",
        "_recovery",
        "_state",
        "_store",
        "_ttl",
        "_unknown_ttl_ms",
    )

    def __init__(
        self,
        client: RedisClient,
        settings: Settings,
        *,
        hooks: CacheHooks | None = None,
        clock: Callable[[], float] = time.monotonic,
        floor: GenerationFloor | None = None,
    ) -> None:
        """``floor``: where turnovers persist the generation first (Postgres in the
        service, ``memory.generation_floor``); without one it lives in this process."""
        store = ContextStore(
            client,
            settings.cache_key_prefix,
            settings.redis_timeout_ms / 1000,
            _in_flight_limit(client, settings),
        )
        breaker = CircuitBreaker(
            settings.breaker_failure_threshold, settings.breaker_cooldown_seconds, clock
        )
        state = TierState(
            breaker,
            DirtyUsers(settings.dirty_users_max),
            RecentVersions(settings.cache_recent_writes_max),
        )
        background = BackgroundTasks()
        ttl = JitteredTtl(settings.cache_ttl_seconds * 1000, settings.cache_ttl_jitter)
        # ONE structure of decoded values: the memo, and the near-cache once a link is
        # attached (``near_tier``); until then it never serves. None keeps nothing at all.
        # The process's other key families on this Redis share it (``tier``): each reads
        # its own keys only, so the values under ``ctx`` keys are contexts.
        near: NearCache[Any] | None = None
        if settings.near_cache_max_entries > 0:
            near = NearCache(
                max_entries=settings.near_cache_max_entries,
                max_bytes=settings.near_cache_max_bytes,
                max_age_s=settings.near_cache_max_age_seconds,
                version_of=_version_of,
                recheck_fraction=settings.near_cache_recheck_fraction,
            )
            state.subscribe(near.on_tier_event)
        check_s = settings.cache_epoch_check_ms / 1000
        epoch = EpochWatch(
            store,
            state,
            floor if floor is not None else InMemoryFloor(),
            ask_run_id=not isinstance(client, RedisCluster),
            retry_s=check_s,
        )
        self._store = store
        self._state = state
        self._breaker = breaker  # read on every load: a plain attribute of ours
        self._background = background
        self._ttl = ttl
        self._max_bytes = settings.cache_max_value_bytes
        self._near = near
        self._link: InvalidationLink | None = None
        self._rechecker: Rechecker[MemoryContext] | None = None
        if near is not None:
            self._rechecker = Rechecker(
                near,
                background,
                link=self._current_link,
                read=lambda key, entry: self._store.get(int(key[1]), entry.generation),
                complete_version=_complete_version,
                describe=lambda key, entry: f"user {key[1]}",
            )
            near.set_recheck(CONTEXT_FAMILY, self._rechecker)
        self._epoch = epoch
        # Shared GETs: with near-cache fill tickets while the near-cache serves, plain
        # bytes otherwise (one coroutine and one tuple less on a Redis hit).
        self._reads: SharedResults[int, _Read] = SharedResults(self._read)
        self._plain_reads: SharedReads[int] = SharedReads(store.get)
        # A load may join another only while that one is young: a quarter of the bound.
        self._flights: SingleFlight[LoadResult] = SingleFlight(
            max_age_s=settings.coherence_bound_ms / 4000
        )
        # A marker for a write whose COMMIT outcome is unknown outlives the outbox's
        # drain (which takes over if it did commit) but not the cache TTL (if it did not).
        self._unknown_ttl_ms = max(2 * settings.coherence_bound_ms, settings.cache_lease_ms)
        self._fills: FillProtocol[int, MemoryContext] = FillProtocol(
            store,
            state,
            background,
            hooks or CacheHooks(),
            decode=self._decode_untrusted,
            encode=self._installable,
            ttl=ttl,
            lease_ms=settings.cache_lease_ms,
            wait_s=settings.cache_fill_wait_ms / 1000,
            poll_s=settings.cache_fill_poll_ms / 1000,
        )
        self._recovery = Recovery(store, state, background, ttl, epoch, check_s)

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
            result = await self._flights.do(user_id, lambda: self._from_database(user_id, loader))
        else:
            near = self._near
            ticket: FillTicket | None = None
            try:
                if near is not None and near.serving:
                    # The near hit: no await. Never older than this process acknowledged.
                    entry = near.get(
                        (CONTEXT_FAMILY, user_id), generation, state.acked.get(user_id)
                    )
                    if entry is not None:
                        metrics.NEAR.inc()
                        metrics.LOAD_NEAR.observe(time.perf_counter() - start)
                        return LoadResult(entry.value, _NEAR, entry)
                    raw, ticket = await self._reads.read(user_id, generation)
                else:
                    raw = await self._plain_reads.read(user_id, generation)
            except REDIS_ERRORS as exc:
                state.redis_failed(exc)
                metrics.ERROR.inc()
                result = await self._flights.do(
                    user_id, lambda: self._from_database(user_id, loader)
                )
            else:
                self._breaker.record_success()
                corrupt = None
                if raw is None:
                    if ticket is not None and near is not None:
                        near.finish(ticket)
                else:
                    try:
                        context = self._decode(user_id, raw, generation, ticket)
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

    async def _read(self, user_id: int, generation: int) -> _Read:
        """The GET that concurrent loads share; a near-cache ticket is taken before it is
        sent, so an invalidation handled while it is out keeps its answer from being
        served from process memory later."""
        near = self._near
        if near is None or not near.serving:
            return await self._store.get(user_id, generation), None
        ticket = near.begin((CONTEXT_FAMILY, user_id))
        try:
            return await self._store.get(user_id, generation), ticket
        except BaseException:  # a cancelled or failed GET releases its ticket
            near.finish(ticket)
            raise

    def _decode(
        self, user_id: int, raw: bytes, generation: int, ticket: FillTicket | None
    ) -> MemoryContext | None:
        """The context in what a GET returned (None: a marker). Raises CodecError (counted).

        The load that sent the GET settles it into the near-cache under its ticket (it
        resumes before any load that joined the GET, so an open ticket means "mine"); a
        joiner, or a read without a ticket, only uses the memo.
        """
        near = self._near
        try:
            if near is None:
                return decode_for(user_id, raw)
            key = (CONTEXT_FAMILY, user_id)
            if ticket is not None and ticket.open:
                return near.settle(ticket, raw, generation, partial(decode_for, user_id))[0]
            prior = near.peek(key)
            if prior is not None and prior.raw == raw:  # the memo: same bytes, same value
                return prior.value  # type: ignore[no-any-return]
            return near.decode(key, raw, generation, partial(decode_for, user_id))
        except CodecError:
            metrics.CORRUPT.inc()
            raise

    def _decode_untrusted(self, user_id: int, raw: bytes) -> MemoryContext | None:
        """Decoding for the fill protocol (a value its lease script or a poll found): the
        memo only; a fill never installs into the near-cache. Raises CodecError (counted)."""
        return self._decode(user_id, raw, self._state.generation or 0, None)

    async def _generation_to_read(self, user_id: int) -> int | None:
        """The slow gate: learn the generation first; None when Redis must be bypassed."""
        state = self._state
        if self._breaker.closed and state.generation is None:
            await self._recovery.establish()
        if not self._breaker.closed:
            self._recovery.probe_if_due()
            return None
        if user_id in state.dirty:
            self._recovery.schedule_flush()
            return None
        return state.generation  # None while a turnover is pending

    async def _from_database(self, user_id: int, loader: Loader) -> LoadResult:
        return LoadResult(await loader(self._state.floor_for(user_id)), _DATABASE)

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

    async def write_through(self, context: MemoryContext) -> WriteThrough:
        """Install a just-committed context (set-if-newer). Never raises.

        Returns whether Redis now holds this version (or a newer one): only then may
        the writer clear the write's outbox row. If Redis cannot be told, the user is
        remembered as dirty: loads for them in this process skip Redis until a
        versioned marker has been installed. Either way, no later load of this process
        joins a read or a load that began before the write.
        """
        user_id = context.user_id
        if user_id is None:
            return WriteThrough.DISABLED
        self._state.acked.note(user_id, context.version)
        try:
            return await self._write_through(user_id, context)
        finally:
            self._forget(user_id)

    async def _write_through(self, user_id: int, context: MemoryContext) -> WriteThrough:
        version = context.version
        state = self._state
        if not self._breaker.closed:
            self._defer(user_id, version)
            return WriteThrough.DEFERRED
        value = self._installable(context)
        if value is None:
            return WriteThrough.DEFERRED
        try:
            generation = await self._generation_for_write()
            if generation is None:
                self._defer(user_id, version)
                return WriteThrough.DEFERRED
            result = await self._store.fill(user_id, generation, value, self._ttl(), None, None)
        except REDIS_ERRORS as exc:
            state.redis_failed(exc)
            metrics.WRITE_ERROR.inc()
            state.mark_dirty(user_id, version)
            self._recovery.schedule_flush()
            return WriteThrough.DEFERRED
        state.redis_answered()
        (metrics.WRITE_STORED if result.stored else metrics.WRITE_STALE).inc()
        if state.dirty.pending and user_id in state.dirty:
            # Redis now holds this version or newer: the older dirty entry is moot.
            state.mark_clean(user_id, version)
        return WriteThrough.STORED if result.stored else WriteThrough.NEWER

    async def _generation_for_write(self) -> int | None:
        """The generation to write into, read fresh; None: defer (the outbox covers it).

        A write into a generation other processes have already left would be invisible
        to their readers. Raises Redis errors.
        """
        if self._state.generation is None:
            await self._recovery.establish()
        generation = await self._epoch.for_write()
        if generation is None:
            self._recovery.check_soon()
        return generation

    def _defer(self, user_id: int, version: int) -> None:
        self._state.mark_dirty(user_id, version)
        metrics.WRITE_DEFERRED.inc()
        self._recovery.probe_if_due()

    def _forget(self, user_id: int) -> None:
        """Later loads of this user start afresh: none joins one from before a write, none
        is served what the near-cache held (and no GET out now may settle into it)."""
        self._reads.forget(user_id)
        self._plain_reads.forget(user_id)
        self._flights.forget(user_id)
        if self._near is not None:
            self._near.invalidate((CONTEXT_FAMILY, user_id))

    async def mark_outcome_unknown(self, user_id: int, version: int) -> None:
        """A COMMIT failed midway: the write at ``version`` may or may not be saved.

        Installs a marker at that version (not forced: a complete value at or above it
        stays), so no fill older than it can land; its TTL is short, so if the write
        was not saved the user's context is cached again soon. If it was saved, its
        outbox row gets a durable marker from a drainer. Never raises.
        """
        self._forget(user_id)
        try:
            await self._install_marker(user_id, version, self._unknown_ttl_ms, force=False)
        finally:
            self._forget(user_id)  # and again once Redis answered (near-cache)

    async def invalidate(self, user_id: int, version: int = 0) -> None:
        """Make the next load of this user reload from the loader (ops command).

        Installs a marker at ``max(version, cached version)`` instead of deleting, so an
        in-flight fill older than what was cached cannot reinstall itself. If Redis is
        unreachable the user is remembered as dirty like a deferred write.
        """
        self._forget(user_id)
        try:
            await self._install_marker(user_id, version, self._ttl(), force=True)
        finally:
            self._forget(user_id)  # and again once Redis answered (near-cache)

    async def _install_marker(self, user_id: int, version: int, ttl_ms: int, force: bool) -> None:
        """A marker at ``version`` for one user, or the user made dirty. Never raises."""
        state = self._state
        if not self._breaker.closed:
            self._defer(user_id, version)
            return
        try:
            generation = await self._generation_for_write()
            if generation is not None:
                await self._store.invalidate(
                    user_id, generation, encode_marker(version), ttl_ms, force=force
                )
        except REDIS_ERRORS as exc:
            state.redis_failed(exc)
            generation = None
        else:
            state.redis_answered()
        if generation is None:
            state.mark_dirty(user_id, version)
            self._recovery.schedule_flush()

    async def install_markers(self, entries: Sequence[tuple[str, int]]) -> MarkerInstall:
        """Versioned markers for outbox rows (``memory.drainer``), pipelined. Never raises.

        Not forced: a complete value at or above a row's version stays. Does nothing
        while the breaker is open or the generation is unsure (the rows stay for later).
        """
        if not self._breaker.closed or not entries:
            return MarkerInstall.UNAVAILABLE if entries else MarkerInstall.INSTALLED
        users: list[tuple[int, int]] = []
        for entity_id, version in entries:
            try:
                users.append((int(entity_id), version))
            except ValueError:
                log.warning("cache: outbox row %r is not a user's context; dropped", entity_id)
        state = self._state
        try:
            generation = await self._generation_for_write()
            if generation is None:
                return MarkerInstall.UNAVAILABLE
            await self._store.invalidate_many(
                [(user_id, encode_marker(version)) for user_id, version in users],
                generation,
                self._ttl(),
            )
        except REDIS_ERRORS as exc:
            state.redis_failed(exc)
            return MarkerInstall.UNAVAILABLE
        state.redis_answered()
        for user_id, version in users:
            self._forget(user_id)
            if state.dirty.pending and user_id in state.dirty:
                state.mark_clean(user_id, version)
        return MarkerInstall.INSTALLED

    async def cached_versions(self, user_ids: Sequence[int]) -> list[CachedVersion | None] | None:
        """What Redis holds for each user at the current generation, headers only.

        None when that cannot be told now (breaker open, Redis error, epoch unsure).
        """
        if not self._breaker.closed:
            return None
        try:
            generation = await self._generation_for_write()
            if generation is None:
                return None
            headers = await self._store.headers(user_ids, generation)
        except REDIS_ERRORS as exc:
            self._state.background_check_failed(exc)
            return None
        return [_parse_header(raw) for raw in headers]

    # ------------------------------------------------------------ operations

    async def recover(self) -> bool:
        """Probe Redis now (ignoring the cooldown) and close the breaker if it answers.

        Normally recovery runs by itself after the cooldown; this is for ops and tests.
        Returns whether the breaker is closed afterwards.
        """
        return await self._recovery.recover()

    async def check_epoch(self) -> None:
        """Run one epoch check now (the watcher does every ``cache_epoch_check_ms``).

        For ops and tests; a Redis failure counts for the breaker.
        """
        try:
            await self._epoch.check()
        except REDIS_ERRORS as exc:
            self._state.redis_failed(exc)
            return
        self._state.redis_answered()
        self._recovery.watch()

    async def turn_over(self) -> None:
        """Orphan every cached context now (ops). Raises nothing; see ``check_epoch``."""
        try:
            await self._recovery.turn_over(TurnoverReason.OPERATOR)
        except REDIS_ERRORS as exc:
            self._state.redis_failed(exc)

    @property
    def generation(self) -> int | None:
        """The generation this process currently reads (None before the first load, and
        while a turnover is pending)."""
        return self._state.generation

    @property
    def known_generation(self) -> int:
        """The highest generation this process has read; it never decreases."""
        return self._state.known_generation

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

    @property
    def tier(self) -> SharedTier:
        """The process's view of Redis (state, epoch watch, recovery, near-cache and its
        link), for other key families on the same Redis: one breaker, one generation, one
        near-cache (``cache.tier``)."""
        return SharedTier(self._state, self._epoch, self._recovery, self._near, self._current_link)

    def subscribe(self, subscriber: Subscriber) -> None:
        """Be told of every generation change and breaker transition (see ``state``).

        Anything a process keeps from Redis (a near-cache) must be dropped whole on the
        events in ``state.DROP_EVENTS``: the generation changed, or the link is lost.
        """
        self._state.subscribe(subscriber)

    # ------------------------------------------------------------- near-cache

    def attach_link(self, link: InvalidationLink) -> None:
        """Serve near hits while ``link`` is established (``near_tier`` calls this).

        The near-cache hears every change the link reports; the tier hears that the
        epoch record changed or Redis was flushed (another process's turnover, a flush)
        and that the link came back (Redis may have restarted): each starts an epoch
        check at once instead of at the next interval.
        """
        near = self._near
        if near is None:
            return
        self._link = link
        link.subscribe(near)
        link.subscribe(_EpochNews(self))

    def _current_link(self) -> InvalidationLink | None:
        return self._link

    def _check_epoch_soon(self) -> None:
        if self._state.known_generation:  # the first load establishes it otherwise
            self._recovery.check_soon()

    async def rechecks_settled(self) -> None:
        """Until every sampled re-check started so far has finished (tests, ops)."""
        if self._rechecker is not None:
            await self._rechecker.settled()

    @property
    def near(self) -> NearCache[Any] | None:
        """The process's near-cache of decoded values (None with
        ``near_cache_max_entries=0``): contexts under ``ctx`` keys, and the values of other
        key families that share this tier (``tier``)."""
        return self._near

    @property
    def near_link(self) -> InvalidationLink | None:
        """The invalidation link attached to the near-cache (None until ``near_tier``
        attaches one): what re-checks of any key family wait for a barrier on."""
        return self._link

    @property
    def near_serving(self) -> bool:
        """True while loads may be served from process memory."""
        return self._near is not None and self._near.serving

    async def ping(self) -> bool:
        """Whether Redis answers, for readiness: one lost reply is not an outage.

        A probe shares the hot path's short timeout, and a pooled connection that Redis (or
        a proxy) closed fails once before it is replaced; reporting "down" on either would
        take a healthy process out of rotation. So a probe is asked up to three times.
        """
        for _ in range(_PING_ATTEMPTS):
            try:
                return await self._store.ping()
            except REDIS_ERRORS:
                continue
        return False

    async def stats(self) -> CacheStats:
        """Counters of this process, plus a SCAN of this prefix's keys (never KEYS)."""
        usage = await key_usage(self._store)
        near = self._near
        return CacheStats(
            enabled=True,
            requests=RequestCounts.now(),
            keys=usage.keys,
            bytes_used=usage.bytes_used,
            breaker_state=str(self._breaker.state),
            generation=self._state.generation,
            dirty_users=len(self._state.dirty),
            near_serving=self.near_serving,
            near_entries=0 if near is None else len(near),
            near_bytes=0 if near is None else near.bytes_used,
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


class _EpochNews:
    """What the invalidation link tells the Redis tier itself (a ``LinkSubscriber``)."""

    __slots__ = ("_cache",)

    def __init__(self, cache: ContextCache) -> None:
        self._cache = cache

    def link_established(self) -> None:
        self._cache._check_epoch_soon()  # Redis may have restarted while the link was down

    def link_lost(self) -> None: ...

    def flushed(self) -> None:
        self._cache._check_epoch_soon()  # the epoch record went with everything else

    def invalidated(self, keys: Sequence[EntityKey]) -> None: ...

    def epoch_changed(self) -> None:
        self._cache._check_epoch_soon()
