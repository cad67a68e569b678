"""The Redis tier in front of the store: namespaces cached with the memory contexts' protocol.

One protocol, not a second one (docs/architecture.md, "The consistency protocol"); per invariant:

* **Versions.** A namespace's value (``cached_values``) carries its combined version; the
  cache tier's Lua scripts install it set-if-newer (``cache.fill``, ``cache.scripts``).
* **Reads.** All the namespaces a batch needs in ONE MGET (``cache.family_store``); the
  misses of the batch go through the fill protocol together (``fill.BatchFillProtocol``:
  one pipeline of leases, ONE Postgres statement for every namespace to load, one
  pipeline of installs), behind a per-process single-flight per namespace
  (``SingleFlight.do_many``) whose flights no load joins once a write was acknowledged or
  once they are older than a quarter of the coherence bound.
* **Writes.** The write's transaction owes the outbox each changed namespace's version
  and reads the new values back (``repository.write``); after COMMIT they are installed
  set-if-newer in one pipeline and the outbox rows acknowledged. If Redis cannot be told
  the namespaces are *dirty*: this process reads them from Postgres (the primary) until a
  versioned marker is in; other processes learn of the write from the outbox, whose
  drainers install markers through :meth:`NamespaceCache.install_markers` (family ``ns``).
* **One Redis, one breaker, one generation.** The breaker, the generation, its epoch watch
  and recovery are the process's (``cache.tier.SharedTier``, from the memory-context
  cache): a turnover orphans the store's values too (their keys carry the generation), and
  a failure seen here opens the breaker for everyone. Dirty namespaces and acknowledged
  versions are this family's own (``cache.family_state``).
* **Replica.** Fills read the replica when one is configured, except for dirty namespaces;
  a replica answer older than a marker found in Redis or a version this process
  acknowledged is discarded and the primary read instead.
* **Near-cache.** The process's one near-cache (``cache.near``, shared with the memory
  contexts under keys of family ``ns``, by namespace digest) answers a warm read with no
  round trip, under the contexts' rules: only while the invalidation link is established,
  the breaker closed and the generation the entry was read at; never below a version this
  process acknowledged; never a dirty namespace; never past the earliest expiry of its
  items. A value read from Redis is installed only by the read that took a fill ticket
  before its GET (no invalidation of the key came meanwhile); a write evicts the entry
  after Redis answered; sampled hits are re-checked against Redis (``near_recheck``).

Nothing Redis raises leaves this class; the loader's own errors (``StoreUnavailable``) do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from redis.asyncio import BlockingConnectionPool

from memlayer.cache import keys
from memlayer.cache import metrics as cache_metrics
from memlayer.cache.background import BackgroundTasks
from memlayer.cache.client import RedisClient
from memlayer.cache.codec import encode_marker, read_frame
from memlayer.cache.dirty import DirtyKeys
from memlayer.cache.epoch import TurnoverReason
from memlayer.cache.errors import REDIS_ERRORS, CodecError
from memlayer.cache.family_state import FamilyState
from memlayer.cache.family_store import FamilyStore
from memlayer.cache.fill import BatchFillProtocol, Fetched
from memlayer.cache.hooks import FillHooks
from memlayer.cache.invalidation import InvalidationLink
from memlayer.cache.memo import DecodedMemo
from memlayer.cache.near import FillTicket, NearCache
from memlayer.cache.near_recheck import Rechecker
from memlayer.cache.port import MarkerInstall, WriteThrough
from memlayer.cache.recent import RecentVersions
from memlayer.cache.shared_read import SharedResults
from memlayer.cache.singleflight import SingleFlight
from memlayer.cache.state import TierEvent
from memlayer.cache.tier import SharedTier
from memlayer.cache.ttl import JitteredTtl
from memlayer.memory.acks import OutboxAcks
from memlayer.records import ReadFloor
from memlayer.settings import Settings
from memlayer.store import metrics
from memlayer.store.cached_values import NamespaceValue, ValueExpired, decode, encode
from memlayer.store.repository import NamespaceRows, StoreRepository

log = logging.getLogger("memlayer.store")

# The hooks tests stage races with, keyed by namespace digest.
NamespaceHooks = FillHooks[str, NamespaceValue]

_NS = keys.NAMESPACE_FAMILY
# What a (shared) GET hands back: the bytes, and the near-cache ticket taken before it was
# sent (None when the near-cache is not serving: nothing read then may be served later).
_Read = tuple[bytes | None, FillTicket | None]
# Sampled near hits re-read at once, at most (more are skipped and counted).


def _complete_version(raw: bytes) -> int | None:
    """The version of a complete value; None for a marker or anything not ours (re-checks)."""
    try:
        version, payload = read_frame(raw)
    except CodecError:
        return None
    return version if payload is not None else None


class NamespaceCache:
    """Versioned, write-through Redis cache of store namespaces (see the module doc)."""

    def __init__(
        self,
        tier: SharedTier,
        client: RedisClient,
        repository: StoreRepository,
        settings: Settings,
        acks: OutboxAcks | None,
        *,
        hooks: NamespaceHooks | None = None,
    ) -> None:
        prefix = settings.cache_key_prefix
        in_flight = (
            None
            if isinstance(getattr(client, "connection_pool", None), BlockingConnectionPool)
            else settings.redis_max_connections
        )
        self._store: FamilyStore[str] = FamilyStore(
            client,
            settings.redis_timeout_ms / 1000,
            partial(keys.namespace_key, prefix),
            partial(keys.namespace_lease_key, prefix),
            in_flight,
        )
        self._tier = tier
        self._state: FamilyState[str] = FamilyState(
            tier.state,
            DirtyKeys(settings.dirty_users_max),
            RecentVersions(settings.cache_recent_writes_max),
        )
        self._repository = repository
        self._acks = acks
        self._cap = settings.store_cache_max_items
        self._max_bytes = settings.store_cache_max_value_bytes
        self._ttl = JitteredTtl(settings.cache_ttl_seconds * 1000, settings.cache_ttl_jitter)
        self._unknown_ttl_ms = max(2 * settings.coherence_bound_ms, settings.cache_lease_ms)
        # The near-cache is also the memo of decoded values (as for contexts); without
        # one (``near_cache_max_entries=0``) a memo of its own remembers decoded values.
        self._near: NearCache[Any] | None = tier.near
        self._memo: DecodedMemo[str, NamespaceValue] | None = (
            DecodedMemo(decode, settings.cache_decoded_memo_size) if tier.near is None else None
        )
        self._flights: SingleFlight[NamespaceValue] = SingleFlight(
            max_age_s=settings.coherence_bound_ms / 4000
        )
        self._reads: SharedResults[str, _Read] = SharedResults(self._read_one)
        self._background = BackgroundTasks()
        self._hooks = hooks or NamespaceHooks()
        self._fills: BatchFillProtocol[str, NamespaceValue] = BatchFillProtocol(
            self._store,
            self._state,
            self._background,
            self._hooks,
            decode=self._decode_valid,
            encode=self._installable,
            ttl=self._ttl,
            lease_ms=settings.cache_lease_ms,
            wait_s=settings.cache_fill_wait_ms / 1000,
            poll_s=settings.cache_fill_poll_ms / 1000,
        )
        # The database's clock minus ours, as last seen by a fill: cached values expire by
        # the database's clock, as rows read from it do.
        self._skew = timedelta(0)
        self._flush_task: asyncio.Task[None] | None = None
        tier.state.subscribe(self._on_tier_event)
        self._rechecker: Rechecker[Any] | None = None
        if self._near is not None:
            self._rechecker = Rechecker(
                self._near,
                self._background,
                link=lambda: self._tier.near_link(),
                read=lambda key, entry: self._store.get(str(key[1]), entry.generation),
                complete_version=_complete_version,
                describe=lambda key, entry: f"store namespace {entry.value.namespace!r}",
            )
            self._near.set_recheck(_NS, self._rechecker)

    # ------------------------------------------------------------------ reads

    async def read(self, names: Sequence[str]) -> dict[str, NamespaceValue]:
        """The value of each namespace (distinct texts, never the root): from Redis in ONE
        round trip for all of them (a GET shared with concurrent reads when there is one
        namespace, an MGET otherwise), the misses filled together; from Postgres when Redis
        must be bypassed (breaker open, Redis failed, a namespace written while Redis could
        not be told). Every database load, filled or not, is single-flighted per
        namespace. The store's only cached read path: a near-cache lookup goes first, here.
        Never raises a Redis error; the loader's errors propagate."""
        out: dict[str, NamespaceValue] = {}
        state = self._state
        by_digest = {keys.namespace_digest(name): name for name in names}
        generation = state.shared.generation
        if generation is None or not state.shared.breaker.closed or state.dirty.pending:
            generation = await self._generation_to_read()
        if generation is None:
            return await self._bypass(list(by_digest), by_digest, out)
        readable = list(by_digest)
        if state.dirty.pending:
            dirty = [d for d in readable if d in state.dirty]
            if dirty:
                readable = [d for d in readable if d not in state.dirty]
                await self._bypass(dirty, by_digest, out)
            if not readable:
                return out
        near = self._near
        if near is not None and near.serving:
            readable = self._near_hits(near, readable, by_digest, generation, out)
            if not readable:
                return out  # every namespace from process memory: no await at all
        try:
            if len(readable) == 1:
                raw, ticket = await self._reads.read(readable[0], generation)
                raws, tickets = [raw], [ticket]
            else:
                raws, tickets = await self._read_many(readable, generation)
        except REDIS_ERRORS as exc:
            state.redis_failed(exc)
            return await self._bypass(readable, by_digest, out)
        state.shared.breaker.record_success()
        missed: dict[str, bytes | None] = {}  # digest -> the bytes to replace, if any
        try:
            for digest, raw, ticket in zip(readable, raws, tickets, strict=True):
                if raw is None:
                    missed[digest] = None
                    continue
                try:
                    value = self._decode(digest, raw, generation, ticket)
                except CodecError:  # corrupt, or expired (ValueExpired): replace it
                    missed[digest] = raw
                    continue
                if value is None:  # a marker: reload
                    missed[digest] = None
                else:
                    out[by_digest[digest]] = value
        finally:
            if near is not None:
                for ticket in tickets:
                    if ticket is not None:
                        near.finish(ticket)  # idempotent: settled ones are closed already
        metrics.LOOKUP_HIT.inc(len(readable) - len(missed))
        if missed:
            metrics.LOOKUP_MISS.inc(len(missed))
            filled = await self._flights.do_many(
                list(missed), partial(self._fill, generation, by_digest, missed)
            )
            for key, value in filled.items():
                out[by_digest[str(key)]] = value
        return out

    def _near_hits(
        self,
        near: NearCache[Any],
        digests: list[str],
        names: Mapping[str, str],
        generation: int,
        out: dict[str, NamespaceValue],
    ) -> list[str]:
        """Answer what the near-cache holds (into ``out``); return the digests left for
        Redis. An entry is served at this generation, at or above the version this process
        acknowledged for it, and only until its earliest item expires (then evicted)."""
        acked = self._state.acked
        left: list[str] = []
        now: datetime | None = None
        for digest in digests:
            key = (_NS, digest)
            entry = near.get(key, generation, acked.get(digest))
            if entry is None:
                left.append(digest)
                continue
            value: NamespaceValue = entry.value
            if value.valid_until is not None:
                if now is None:
                    now = self.now()
                if now >= value.valid_until:
                    near.expire(key, entry)
                    left.append(digest)
                    continue
            out[names[digest]] = value
        served = len(digests) - len(left)
        if served:
            metrics.LOOKUP_NEAR.inc(served)
        return left

    async def _read_one(self, digest: str, generation: int) -> _Read:
        """The GET that concurrent reads of one namespace share; a near-cache ticket is
        taken before it is sent (see ``ContextCache._read``)."""
        near = self._near
        if near is None or not near.serving:
            return await self._store.get(digest, generation), None
        ticket = near.begin((_NS, digest))
        try:
            return await self._store.get(digest, generation), ticket
        except BaseException:  # a cancelled or failed GET releases its ticket
            near.finish(ticket)
            raise

    async def _read_many(
        self, digests: list[str], generation: int
    ) -> tuple[list[bytes | None], list[FillTicket | None]]:
        """ONE MGET, with a near-cache ticket per namespace taken before it is sent."""
        near = self._near
        if near is None or not near.serving:
            return await self._store.get_many(digests, generation), [None] * len(digests)
        tickets: list[FillTicket | None] = [near.begin((_NS, d)) for d in digests]
        try:
            return await self._store.get_many(digests, generation), tickets
        except BaseException:
            for ticket in tickets:
                if ticket is not None:
                    near.finish(ticket)
            raise

    def _decode(
        self, digest: str, raw: bytes, generation: int, ticket: FillTicket | None
    ) -> NamespaceValue | None:
        """The namespace in what a read returned (None: a marker). Raises ValueExpired for
        a value past its earliest item expiry (kept nowhere: a miss, to be replaced) and
        CodecError (counted) for a corrupt one. The read that took ``ticket`` settles the
        value into the near-cache (served from then on if no invalidation came while it
        was out); a read without one, or a joiner of a shared GET, only uses the memo."""
        near = self._near
        if near is None:
            assert self._memo is not None
            value = self._memo.decode(digest, raw)  # counts a corrupt value itself
        else:
            live = partial(self._decode_live, digest)
            try:
                if ticket is not None and ticket.open:
                    value = near.settle(ticket, raw, generation, live)[0]
                else:
                    value = near.decode((_NS, digest), raw, generation, live)
            except ValueExpired:
                raise
            except CodecError:
                cache_metrics.CORRUPT.inc()
                raise
        if value is not None and value.valid_until is not None and value.expired(self.now()):
            # Decoded earlier (the memo gave it back without decoding): expired since.
            if near is not None:
                near.expire((_NS, digest))
            raise ValueExpired("the cached namespace holds an expired item")
        return value

    def _decode_live(self, digest: str, raw: bytes) -> NamespaceValue | None:
        """``decode``, refusing a value past its earliest item expiry (``ValueExpired``),
        so the near-cache never keeps one."""
        value = decode(digest, raw)
        if value is not None and value.valid_until is not None and value.expired(self.now()):
            raise ValueExpired("the cached namespace holds an expired item")
        return value

    async def _bypass(
        self, digests: list[str], names: Mapping[str, str], out: dict[str, NamespaceValue]
    ) -> dict[str, NamespaceValue]:
        """Load namespaces from Postgres without Redis, single-flighted like fills."""
        metrics.LOOKUP_BYPASS.inc(len(digests))
        loaded = await self._flights.do_many(digests, partial(self._load_direct, names))
        for key, value in loaded.items():
            out[names[str(key)]] = value
        return out

    async def _load_direct(
        self, names: Mapping[str, str], digests: list[Hashable]
    ) -> dict[Hashable, NamespaceValue]:
        floors = {str(d): self._state.floor_for(str(d)) for d in digests}
        loaded: dict[Hashable, NamespaceValue] = {}
        loaded.update(await self._load(names, floors))
        return loaded

    async def _generation_to_read(self) -> int | None:
        generation = await self._tier.generation_to_read()
        if generation is not None and self._state.dirty.pending:
            self._schedule_flush()
        return generation

    async def _fill(
        self,
        generation: int,
        names: Mapping[str, str],
        corrupt: Mapping[str, bytes | None],
        digests: list[Hashable],
    ) -> dict[Hashable, NamespaceValue]:
        fresh = [str(d) for d in digests]
        fetched: dict[str, Fetched[NamespaceValue]] = await self._fills.fill_many(
            fresh, generation, partial(self._load, names), {d: corrupt.get(d) for d in fresh}
        )
        return {digest: found.value for digest, found in fetched.items()}

    async def _load(
        self, names: Mapping[str, str], floors: Mapping[str, ReadFloor]
    ) -> dict[str, NamespaceValue]:
        """ONE statement for every namespace to load (two if a replica was behind)."""
        repository = self._repository
        texts = [names[digest] for digest in floors]
        replica = repository.has_replica and not any(f.primary for f in floors.values())
        rows = await repository.load_namespaces(texts, self._cap, replica=replica)
        if replica:
            behind = [names[d] for d, f in floors.items() if rows[names[d]].version < f.version]
            if behind:
                metrics.REPLICA_DISCARDED.inc(len(behind))
                rows.update(await repository.load_namespaces(behind, self._cap))
        if rows:
            self._observe_clock(next(iter(rows.values())))
        return {digest: NamespaceValue.from_rows(rows[names[digest]]) for digest in floors}

    def _decode_valid(self, digest: str, raw: bytes) -> NamespaceValue | None:
        """The fill protocol's decode (the memo only: a fill never installs into the
        near-cache): an expired value is one to replace, like a corrupt one."""
        return self._decode(digest, raw, self._state.shared.generation or 0, None)

    def _installable(self, value: NamespaceValue) -> bytes | None:
        """The bytes to install: the value; past the byte cap, the value without its items
        (readers then ask Postgres); a marker if it cannot be encoded at all."""
        try:
            raw = encode(value)
            if len(raw) > self._max_bytes:
                raw = encode(value.without_items())
        except CodecError:
            log.exception("store cache: namespace %r cannot be encoded", value.namespace)
            try:
                return encode_marker(value.version)
            except CodecError:
                return None
        return raw

    def now(self) -> datetime:
        """The database's idea of now (our clock corrected by the last fill's reading)."""
        return datetime.now(UTC) + self._skew

    def _observe_clock(self, rows: NamespaceRows) -> None:
        # The statement's start by the database's clock, seen a little later by ours: the
        # estimate errs towards expiring cached values early, never late.
        self._skew = rows.read_at - datetime.now(UTC)

    # ----------------------------------------------------------------- writes

    async def write_through(self, loaded: Mapping[str, NamespaceRows]) -> dict[str, WriteThrough]:
        """Install a committed write's namespaces (set-if-newer, one pipeline) and
        acknowledge the outbox rows Redis now holds. Never raises."""
        values = {keys.namespace_digest(n): NamespaceValue.from_rows(r) for n, r in loaded.items()}
        for digest, value in values.items():
            self._state.acked.note(digest, value.version)
        try:
            outcomes = await self._write_through(values)
        finally:
            for digest in values:
                self._forget(digest)
        if self._acks is not None:
            for digest, outcome in outcomes.items():
                if outcome.redis_holds_it:
                    self._acks.ack(keys.NAMESPACE_FAMILY, digest, values[digest].version)
        return {values[d].namespace: outcome for d, outcome in outcomes.items()}

    async def _write_through(self, values: Mapping[str, NamespaceValue]) -> dict[str, WriteThrough]:
        state = self._state
        deferred = dict.fromkeys(values, WriteThrough.DEFERRED)
        if not values:
            return {}
        if not state.shared.breaker.closed:
            self._defer({d: v.version for d, v in values.items()})
            return deferred
        installs = []
        for digest, value in values.items():
            raw = self._installable(value)
            if raw is not None:
                installs.append((digest, raw, None, None))
        try:
            generation = await self._tier.generation_for_write()
            if generation is None:
                self._defer({d: v.version for d, v in values.items()})
                return deferred
            results = await self._store.fill_many(installs, generation, self._ttl())
        except REDIS_ERRORS as exc:
            state.redis_failed(exc)
            cache_metrics.WRITE_ERROR.inc(len(values))
            for digest, value in values.items():
                state.dirty.add(digest, value.version)
            self._schedule_flush()
            return deferred
        state.redis_answered()
        outcomes = dict(deferred)
        for (digest, _, _, _), result in zip(installs, results, strict=True):
            (cache_metrics.WRITE_STORED if result.stored else cache_metrics.WRITE_STALE).inc()
            outcomes[digest] = WriteThrough.STORED if result.stored else WriteThrough.NEWER
            if state.dirty.pending and digest in state.dirty:
                state.dirty.discard(digest, values[digest].version)
        return outcomes

    def _forget(self, digest: str) -> None:
        """Later reads of this namespace start afresh: none joins one from before a write,
        none is served what the near-cache held (and no GET out now may settle into it)."""
        self._reads.forget(digest)
        self._flights.forget(digest)
        if self._near is not None:
            self._near.invalidate((_NS, digest))

    def _defer(self, versions: Mapping[str, int]) -> None:
        for digest, version in versions.items():
            self._state.dirty.add(digest, version)
        cache_metrics.WRITE_DEFERRED.inc(len(versions))
        self._tier.recovery.probe_if_due()

    async def mark_outcome_unknown(self, combined: Mapping[str, int]) -> None:
        """A COMMIT failed midway: markers at the versions it would have given (not
        forced, short-lived), so no older fill lands; if it did commit, its outbox rows
        get durable ones from a drainer. Never raises."""
        versions = {keys.namespace_digest(n): v for n, v in combined.items()}
        for digest in versions:
            self._forget(digest)
        if not self._state.shared.breaker.closed:
            self._defer(versions)
            return
        if not await self._install(versions, self._unknown_ttl_ms):
            for digest, version in versions.items():
                self._state.dirty.add(digest, version)
            self._schedule_flush()

    async def install_markers(self, entries: Sequence[tuple[str, int]]) -> MarkerInstall:
        """Versioned markers for outbox rows of family ``ns`` (the drainer's installer).

        Not forced: a complete value at or above a row's version stays. Does nothing while
        the breaker is open or the generation is unsure (the rows stay). Never raises.
        """
        if not entries:
            return MarkerInstall.INSTALLED
        if not self._state.shared.breaker.closed:
            return MarkerInstall.UNAVAILABLE
        versions: dict[str, int] = {}
        for digest, version in entries:
            if keys.is_namespace_digest(digest):
                versions[digest] = max(version, versions.get(digest, 0))
            else:
                log.warning("store cache: outbox row %r names no namespace; dropped", digest)
        if not await self._install(versions, self._ttl()):
            return MarkerInstall.UNAVAILABLE
        return MarkerInstall.INSTALLED

    async def _install(self, versions: Mapping[str, int], ttl_ms: int) -> bool:
        """Markers (not forced) at the current generation; False if Redis was not told."""
        state = self._state
        try:
            generation = await self._tier.generation_for_write()
            if generation is None:
                return False
            await self._store.invalidate_many(
                [(d, encode_marker(v)) for d, v in versions.items()], generation, ttl_ms
            )
        except REDIS_ERRORS as exc:
            state.redis_failed(exc)
            return False
        state.redis_answered()
        for digest, version in versions.items():
            self._forget(digest)
            if state.dirty.pending and digest in state.dirty:
                state.dirty.discard(digest, version)
        return True

    # ------------------------------------------------------------ dirty flush

    def _on_tier_event(self, event: TierEvent) -> None:
        if event is TierEvent.GENERATION_CHANGED and self._memo is not None:
            self._memo.clear()  # (the near-cache drops itself on the same event)
        elif event is TierEvent.BREAKER_CLOSED and self._state.dirty.pending:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._state.shared.breaker.closed and (
            self._flush_task is None or self._flush_task.done()
        ):
            self._flush_task = self._background.spawn(self._flush_quietly())

    async def _flush_quietly(self) -> None:
        try:
            await self._flush_dirty()
        except REDIS_ERRORS as exc:
            self._state.redis_failed(exc)

    async def _flush_dirty(self) -> None:
        """A marker for every dirty namespace (or one turnover past the set's bound)."""
        dirty = self._state.dirty
        while dirty.pending:
            if dirty.take_overflow():
                try:
                    await self._tier.turn_over(TurnoverReason.DIRTY_OVERFLOW)
                except REDIS_ERRORS:
                    dirty.mark_overflow()
                    raise
                if self._state.shared.generation is None:
                    dirty.mark_overflow()  # the floor could not be raised: later
                    return
            generation = self._state.shared.generation
            if generation is None:
                return
            entries = dirty.snapshot()
            if not entries:
                continue
            await self._store.invalidate_many(
                [(d, encode_marker(v)) for d, v in entries], generation, self._ttl()
            )
            for digest, version in entries:
                dirty.discard(digest, version)

    # ------------------------------------------------------------- near-cache

    async def rechecks_settled(self) -> None:
        """Until every sampled re-check started so far has finished (tests, ops)."""
        if self._rechecker is not None:
            await self._rechecker.settled()

    @property
    def near(self) -> NearCache[Any] | None:
        """The process's near-cache (this family's entries under ``("ns", digest)``)."""
        return self._near

    @property
    def near_link(self) -> InvalidationLink | None:
        """The invalidation link the near-cache serves by (None: it never serves)."""
        return self._tier.near_link()

    @property
    def near_serving(self) -> bool:
        """True while warm reads may be answered from process memory."""
        return self._near is not None and self._near.serving

    # ------------------------------------------------------------- operations

    async def turn_over(self) -> None:
        """Orphan every cached value of every family now (ops, and tests that empty the
        tables under the store). Never raises."""
        try:
            await self._tier.turn_over(TurnoverReason.OPERATOR)
        except REDIS_ERRORS as exc:
            self._state.redis_failed(exc)

    @property
    def breaker_open(self) -> bool:
        return not self._state.shared.breaker.closed

    @property
    def dirty(self) -> int:
        """Namespaces this process wrote while Redis could not be told (not yet marked)."""
        return len(self._state.dirty)

    @property
    def store(self) -> FamilyStore[str]:
        """The Redis round trips (a seam for tests and the bench: key names, raw bytes)."""
        return self._store

    @property
    def generation(self) -> int | None:
        return self._state.shared.generation

    @property
    def hooks(self) -> NamespaceHooks:
        """Where tests stage races (``cache.hooks``); production leaves every hook None."""
        return self._hooks

    @property
    def cap(self) -> int:
        """Namespaces with more live items than this are not cached."""
        return self._cap

    async def aclose(self) -> None:
        if self._near is not None and self._rechecker is not None:
            self._near.remove_recheck(_NS, self._rechecker)
        self._tier.state.unsubscribe(self._on_tier_event)
        await self._flights.cancel_all()
        await self._background.cancel_all()
