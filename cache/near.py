"""A per-process near-cache of decoded values in front of Redis, kept coherent by Redis.

A warm load is one Redis round trip; a near hit is none: a dictionary lookup and a few
comparisons, no await. What makes serving from process memory safe (docs/architecture.md,
"The tiers of a read"):

* Entries are served only while the invalidation link (``cache.invalidation``) is
  established and the Redis tier is usable; Redis tells every process about every change
  under the tracked prefix, and each one evicts the key.
* The whole cache is dropped the moment the link is lost, Redis is flushed, the breaker
  opens or the generation changes; it serves again only once the link is re-established.
* A fill from a read that raced with an invalidation is never served: each read takes a
  :class:`FillTicket` *before* its GET is sent, and an invalidation of that key (or a
  drop) processed while the read was out voids the ticket. Redis queues the invalidation
  of a write the GET did not see after that GET was sent, so it cannot be missed.
* Entries carry the version and generation they were read at, expire after a maximum
  age, and a sampled fraction of hits is handed to a re-check (``cache.near_recheck``).

The same structure is the decoded memo: an entry that is not (or no longer) trusted is
still used to skip decoding when Redis returns byte-identical bytes (:meth:`settle`,
:meth:`decode`), so a process keeps ONE structure of decoded values whether or not it
may serve from it.

Entries are immutable, so one may also keep an encoding of its value for a reader (the
API's JSON of a context), made once and counted in the entry's size
(:meth:`NearEntry.encoded`).

Bounded in entries and in bytes (the encoded length: the decoded objects take a few
times that; see the settings), least-recently-used first: ``memlayer bench-near-policy``
measured LRU against frequency-aware policies on Zipf workloads (docs in the report of
issue 14). Keyed by ``(family, id)``: ONE near-cache per process holds every key family
(memory contexts under ``ctx`` by user id, the LangGraph store's namespaces under ``ns``
by namespace digest), so one bound covers them and one link, one breaker and one
generation drop them together. Each family reads only its own keys, so it may take
the values under them for its own type; each registers how its hits are re-checked
(:meth:`NearCache.set_recheck`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from cachetools import Cache, LRUCache

from memlayer.cache import near_metrics as metrics
from memlayer.cache.keys import EntityKey
from memlayer.cache.state import TierEvent

V = TypeVar("V")

NearKey = tuple[str, int | str]  # (family, entity id), e.g. ("ctx", 42), ("ns", "<digest>")
Recheck = Callable[[NearKey, "NearEntry[Any]"], None]


class DropReason(StrEnum):
    LINK_LOST = "link_lost"
    FLUSH_ALL = "flush_all"
    BREAKER_OPENED = "breaker_opened"
    GENERATION_CHANGED = "generation_changed"
    EPOCH_CHANGED = "epoch_changed"  # the epoch record changed in Redis (a turnover)
    CLOSED = "closed"


class FillOutcome(StrEnum):
    INSTALLED = "installed"  # served from now on
    RACED = "raced"  # invalidated while the read was out: kept for decoding only
    NOT_SERVING = "not_serving"  # link down or breaker open: kept for decoding only
    TOO_LARGE = "too_large"  # larger than the whole byte bound: not kept
    MARKER = "marker"  # the read found a marker: nothing to keep, any entry evicted


_FILL_METRICS = {
    FillOutcome.INSTALLED: metrics.FILL_INSTALLED,
    FillOutcome.RACED: metrics.FILL_RACED,
    FillOutcome.NOT_SERVING: metrics.FILL_NOT_SERVING,
    FillOutcome.TOO_LARGE: metrics.FILL_TOO_LARGE,
}


@dataclass(slots=True, eq=False)
class NearEntry(Generic[V]):
    """A decoded value, the exact bytes it came from, and what it was read at.

    Immutable but for ``encoding``, which :meth:`encoded` sets at most once.
    """

    value: V
    raw: bytes
    version: int
    generation: int
    trusted: bool  # read under a valid ticket: may be served without asking Redis
    installed_at: float  # the cache's clock (monotonic)
    key: NearKey = ("", 0)
    owner: NearCache[V] | None = field(default=None, repr=False)
    encoding: bytes | None = None  # an encoding of ``value`` for a reader, kept with it

    def encoded(self, encode: Callable[[], bytes]) -> bytes:
        """``encode()``, made once per entry and kept while the entry is held.

        For a reader that turns the value into bytes on every hit (the API's JSON): the
        entry is immutable, so its encoding is too. Counted in the entry's size.
        """
        data = self.encoding
        if data is None:
            data = encode()
            if self.owner is not None:
                self.owner._keep_encoding(self, data)
        return data


@dataclass(slots=True)
class FillTicket:
    """Taken before a read's GET is sent; void if the key is invalidated before settling."""

    key: NearKey
    epoch: int
    seq: int
    serving: bool
    open: bool = True


class _Entries(LRUCache[NearKey, NearEntry[Any]]):
    """cachetools' LRU with the byte bound as its size; counts capacity evictions."""

    def popitem(self) -> tuple[NearKey, NearEntry[Any]]:
        item = super().popitem()
        metrics.EVICT_CAPACITY.inc()
        return item

    def peek(self, key: NearKey) -> NearEntry[Any] | None:
        """The entry without making it the most recently used (``Cache`` does not touch)."""
        if key not in self:
            return None
        entry: NearEntry[Any] = Cache.__getitem__(self, key)
        return entry


def _entry_size(entry: NearEntry[Any]) -> int:
    encoding = entry.encoding
    return len(entry.raw) if encoding is None else len(entry.raw) + len(encoding)


class NearCache(Generic[V]):
    """Decoded values per ``(family, id)``, served while Redis vouches for them.

    Not thread-safe: one event loop owns it. Every method is synchronous; link and
    tier events arrive as plain calls (it is a ``LinkSubscriber`` and a tier
    ``Subscriber``).
    """

    __slots__ = (
        "_clock",
        "_entries",
        "_epoch",
        "_invalidated_at",
        "_link_up",
        "_max_age",
        "_max_bytes",
        "_max_entries",
        "_pending",
        "_random",
        "_recheck_fraction",
        "_rechecks",
        "_seq",
        "_serving",
        "_tier_ok",
        "_version_of",
    )

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        max_age_s: float,
        version_of: Callable[[V], int],
        recheck_fraction: float = 0.0,
        recheck: Callable[[NearKey, NearEntry[V]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        """``recheck``: how a sampled hit of any family is re-checked, unless its family
        registered its own (:meth:`set_recheck`); hits of a family with neither are not
        sampled."""
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a near-cache needs room for at least one entry and one byte")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_age = max_age_s
        self._version_of = version_of
        self._recheck_fraction = recheck_fraction
        self._rechecks: dict[str | None, Recheck] = {}
        if recheck is not None:
            self._rechecks[None] = recheck
        self._clock = clock
        self._random = (rng or random.Random()).random
        self._entries = _Entries(max_bytes, getsizeof=_entry_size)
        # The race between reads and invalidations (see FillTicket): ``_seq`` counts
        # invalidations; ``_invalidated_at`` keeps, for keys with a read out only, the
        # ``_seq`` of their last invalidation; ``_epoch`` changes on every drop, voiding
        # every ticket taken before.
        self._seq = 0
        self._epoch = 0
        self._pending: dict[NearKey, int] = {}
        self._invalidated_at: dict[NearKey, int] = {}
        self._link_up = False
        self._tier_ok = True
        self._serving = False

    # ------------------------------------------------------------------ reads

    @property
    def serving(self) -> bool:
        """True while hits may be served: link established and the Redis tier usable."""
        return self._serving

    def get(self, key: NearKey, generation: int, floor: int = 0) -> NearEntry[V] | None:
        """The hot path: a trusted entry of this generation, or None (ask Redis).

        ``floor``: the lowest version the caller may be given (a write this process
        acknowledged); an older entry is evicted, never served.
        """
        if not self._serving:
            return None
        entry: NearEntry[V] | None = self._entries.get(key)
        if entry is None or not entry.trusted:
            return None
        if entry.generation != generation or self._clock() - entry.installed_at > self._max_age:
            del self._entries[key]
            metrics.EVICT_EXPIRED.inc()
            self._sizes_changed()
            return None
        if entry.version < floor:
            del self._entries[key]
            metrics.EVICT_SUPERSEDED.inc()
            self._sizes_changed()
            return None
        if self._recheck_fraction and self._random() < self._recheck_fraction:
            self._sampled(key, entry)
        return entry

    def _sampled(self, key: NearKey, entry: NearEntry[V]) -> None:
        rechecks = self._rechecks
        recheck = rechecks.get(key[0]) or rechecks.get(None)
        if recheck is not None:
            recheck(key, entry)

    def set_recheck(self, family: str, recheck: Recheck) -> None:
        """How sampled hits of ``family`` are re-checked against Redis.

        Each key family reads its own values from Redis, so each re-checks its own (the
        latest registration of a family wins: any reader of those keys can re-check them)."""
        self._rechecks[family] = recheck

    def remove_recheck(self, family: str, recheck: Recheck) -> None:
        """Stop sampling ``family``'s hits for ``recheck`` (its owner is closing); another
        registration of the family since then stays."""
        if self._rechecks.get(family) == recheck:
            del self._rechecks[family]

    def begin(self, key: NearKey) -> FillTicket:
        """Take a ticket before sending the GET whose result :meth:`settle` will offer."""
        self._pending[key] = self._pending.get(key, 0) + 1
        return FillTicket(key, self._epoch, self._seq, self._serving)

    def valid(self, ticket: FillTicket) -> bool:
        """True if nothing voided the ticket: same epoch, serving, key not invalidated."""
        return (
            ticket.open
            and ticket.serving
            and ticket.epoch == self._epoch
            and self._invalidated_at.get(ticket.key, 0) <= ticket.seq
        )

    def finish(self, ticket: FillTicket) -> None:
        """Release a ticket (idempotent; :meth:`settle` does it, a failed read must)."""
        if not ticket.open:
            return
        ticket.open = False
        key = ticket.key
        remaining = self._pending[key] - 1
        if remaining:
            self._pending[key] = remaining
        else:
            del self._pending[key]
            self._invalidated_at.pop(key, None)

    def settle(
        self,
        ticket: FillTicket,
        raw: bytes,
        generation: int,
        decode: Callable[[bytes], V | None],
    ) -> tuple[V | None, FillOutcome]:
        """Decode what the ticket's GET returned (reusing an entry of the same bytes) and
        keep it: served from now on if the ticket is still valid, else for decoding only.

        Returns the value (None for a marker) and what was done with it. ``decode``'s
        exceptions (a corrupt value) propagate; the ticket is released either way.
        """
        key = ticket.key
        try:
            prior: NearEntry[V] | None = self._entries.peek(key)
            value = prior.value if prior is not None and prior.raw == raw else decode(raw)
            if value is None:
                if self._entries.pop(key, None) is not None:
                    self._sizes_changed()
                return None, FillOutcome.MARKER
            outcome = self._keep(ticket, raw, value, generation)
        finally:
            self.finish(ticket)
        return value, outcome

    def _keep(self, ticket: FillTicket, raw: bytes, value: V, generation: int) -> FillOutcome:
        if len(raw) > self._max_bytes:
            outcome = FillOutcome.TOO_LARGE
        else:
            valid = self.valid(ticket)
            if valid:
                outcome = FillOutcome.INSTALLED
            elif ticket.serving and self._serving:
                outcome = FillOutcome.RACED
            else:
                outcome = FillOutcome.NOT_SERVING
            self._store(ticket.key, self._entry(ticket.key, value, raw, generation, valid))
        _FILL_METRICS[outcome].inc()
        return outcome

    def _entry(
        self, key: NearKey, value: V, raw: bytes, generation: int, trusted: bool
    ) -> NearEntry[V]:
        return NearEntry(
            value, raw, self._version_of(value), generation, trusted, self._clock(), key, self
        )

    def decode(
        self, key: NearKey, raw: bytes, generation: int, decode: Callable[[bytes], V | None]
    ) -> V | None:
        """The memo alone: the value in ``raw`` without a ticket, never served from here on.

        For reads that cannot vouch for what they got (a joiner of a shared GET whose
        leader settled it already, a fill's lease script, a poll for another process's
        fill): an entry holding byte-identical bytes gives its decoded value; otherwise
        ``raw`` is decoded and kept untrusted, for decoding only. None for a marker.
        ``decode``'s exceptions propagate.
        """
        prior: NearEntry[V] | None = self._entries.peek(key)
        if prior is not None and prior.raw == raw:
            return prior.value
        value = decode(raw)
        if value is not None and len(raw) <= self._max_bytes:
            self._store(key, self._entry(key, value, raw, generation, False))
        return value

    def _keep_encoding(self, entry: NearEntry[V], data: bytes) -> None:
        """Keep ``data`` with ``entry`` if the entry is still held and it all fits."""
        key = entry.key
        entries = self._entries
        if entry.encoding is not None or entries.peek(key) is not entry:
            return
        if len(entry.raw) + len(data) > self._max_bytes:
            return
        entry.encoding = data
        entries.get(key)  # the most recently used: its own resize must not evict it
        entries[key] = entry  # cachetools recounts the size (and evicts others to fit)
        self._sizes_changed()

    def _store(self, key: NearKey, entry: NearEntry[V]) -> None:
        entries = self._entries
        entries[key] = entry
        while len(entries) > self._max_entries:
            entries.popitem()
        self._sizes_changed()

    def plant(self, key: NearKey, value: V, raw: bytes, generation: int) -> None:
        """Test seam: install a served entry without a read (e.g. a planted stale one)."""
        self._store(key, self._entry(key, value, raw, generation, True))

    # ---------------------------------------------------------- invalidations

    def invalidate(self, key: NearKey) -> bool:
        """Redis (or this process's own write) says the key changed: evict it, and void
        any ticket of it that is out. True if an entry was evicted."""
        self._seq += 1
        if key in self._pending:
            self._invalidated_at[key] = self._seq
        if self._entries.pop(key, None) is None:
            return False
        metrics.EVICT_INVALIDATED.inc()
        self._sizes_changed()
        return True

    def expire(self, key: NearKey, entry: NearEntry[V] | None = None) -> bool:
        """The caller found the value past a validity of its own (a store namespace whose
        earliest item expired): evict what is held for ``key`` (only ``entry``, if given)."""
        held = self._entries.peek(key)
        if held is None or (entry is not None and held is not entry):
            return False
        del self._entries[key]
        metrics.EVICT_EXPIRED.inc()
        self._sizes_changed()
        return True

    def evict_mismatch(self, key: NearKey, entry: NearEntry[V]) -> bool:
        """A re-check found Redis disagreeing: evict ``entry`` if it is still the one held."""
        if self._entries.peek(key) is not entry:
            return False
        del self._entries[key]
        metrics.EVICT_RECHECK.inc()
        self._sizes_changed()
        return True

    def drop(self, reason: DropReason) -> None:
        """Forget everything and void every ticket out (counted by reason)."""
        self._epoch += 1
        self._entries.clear()
        metrics.DROPS.labels(reason.value).inc()
        self._sizes_changed()

    # ------------------------------------------- LinkSubscriber (cache.invalidation)

    def link_established(self) -> None:
        self._link_up = True
        self._serving_changed()

    def link_lost(self) -> None:
        self._link_up = False
        self.drop(DropReason.LINK_LOST)
        self._serving_changed()

    def flushed(self) -> None:
        self.drop(DropReason.FLUSH_ALL)

    def epoch_changed(self) -> None:
        """Another process turned the cache over: what we hold belongs to the old generation
        (the Redis tier adopts the new one at its next epoch check, which this news hastens)."""
        self.drop(DropReason.EPOCH_CHANGED)

    def invalidated(self, keys: Sequence[EntityKey]) -> None:
        for key in keys:
            self.invalidate((key.family, key.entity_id))

    # ------------------------------------------------- tier Subscriber (cache.state)

    def on_tier_event(self, event: TierEvent) -> None:
        """Drop on a generation change or an opening breaker; serve again on closing."""
        if event is TierEvent.GENERATION_CHANGED:
            self.drop(DropReason.GENERATION_CHANGED)
        elif event is TierEvent.BREAKER_OPENED:
            self._tier_ok = False
            self.drop(DropReason.BREAKER_OPENED)
            self._serving_changed()
        elif event is TierEvent.BREAKER_CLOSED:
            self._tier_ok = True
            self._serving_changed()

    def close(self) -> None:
        """Stop serving for good (the link is being closed): drop everything."""
        self._link_up = False
        self.drop(DropReason.CLOSED)
        self._serving_changed()

    # ------------------------------------------------------------------ sizes

    def _serving_changed(self) -> None:
        # No epoch change needed: every loss of serving comes with a drop, and a ticket
        # taken while not serving is never valid.
        self._serving = self._link_up and self._tier_ok

    def _sizes_changed(self) -> None:
        metrics.ENTRIES.set(len(self._entries))
        metrics.BYTES.set(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    @property
    def bytes_used(self) -> int:
        """The sum of the encoded sizes of the entries held (what ``max_bytes`` bounds)."""
        return int(self._entries.currsize)

    @property
    def keys_with_open_tickets(self) -> int:
        """Keys with a read out (bounded by concurrent reads; a leak would show here)."""
        return len(self._pending)

    @property
    def max_entries(self) -> int:
        return self._max_entries

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def peek(self, key: NearKey) -> NearEntry[V] | None:
        """The entry held for ``key`` (trusted or not) without touching its recency."""
        return self._entries.peek(key)
