"""What this process believes about Redis, and the one place where that belief changes.

Three facts decide how a load may use Redis: the cache generation this process reads,
the circuit breaker, and the users whose last write Redis has not seen (the dirty set).
A fourth tells a database load what it must at least see: the versions this process
acknowledged recently (``acked``).
Loads read them as plain attributes on every call (``generation``, ``breaker.closed``,
``dirty.pending``); every *change* goes through a method here, which keeps the gauges
right and tells subscribers.

Subscribers are how tiers in front of this one stay safe: a per-process near-cache of
decoded values must be dropped whole when the generation turns over or the breaker
opens (docs/architecture.md, "The tiers of a read"): :data:`DROP_EVENTS` are the events after which
nothing a process cached from Redis may be used again. The generation only ever rises
(``known_generation``); when Redis is found to have lost data the process stops reading
it (:meth:`TierState.distrust`) until the turnover (``epoch``) has installed a higher one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from enum import StrEnum
from typing import Any

from memlayer.cache import metrics
from memlayer.cache.breaker import CircuitBreaker
from memlayer.cache.dirty import DirtyUsers
from memlayer.cache.errors import REDIS_TIMEOUTS, LoopStalled, SharedReadFailed
from memlayer.cache.recent import RecentVersions
from memlayer.records import ANY_SOURCE, ReadFloor

log = logging.getLogger("memlayer.cache")


class TierEvent(StrEnum):
    GENERATION_CHANGED = "generation_changed"  # a turnover, a newer one adopted, or distrust
    BREAKER_OPENED = "breaker_opened"  # the link to Redis is lost
    BREAKER_CLOSED = "breaker_closed"


# After these, per-process state derived from Redis (decoded values, a near-cache) must
# be dropped whole: the subscription point for "generation changed / link lost".
DROP_EVENTS = frozenset({TierEvent.GENERATION_CHANGED, TierEvent.BREAKER_OPENED})


# Called synchronously, in the order of the changes: a subscriber must not await (the
# breaker closes in the same step as the dirty set is found empty; see recovery).
Subscriber = Callable[[TierEvent], None]


class TierState:
    __slots__ = ("_subscribers", "acked", "breaker", "dirty", "generation", "known_generation")

    def __init__(
        self,
        breaker: CircuitBreaker,
        dirty: DirtyUsers,
        acked: RecentVersions[Any] | None = None,
    ) -> None:
        self.breaker = breaker
        self.dirty = dirty
        self.acked: RecentVersions[Any] = acked if acked is not None else RecentVersions(0)
        # The generation loads read; None until the epoch check has vouched for one
        # (and while a turnover is pending).
        self.generation: int | None = None
        self.known_generation = 0  # the highest generation ever read: never decreases
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop telling ``subscriber`` (a key family's cache closing before the tier)."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def _announce(self, event: TierEvent) -> None:
        for subscriber in self._subscribers:
            subscriber(event)

    def bypasses(self, key: Hashable) -> bool:
        """True when Redis must not be used for ``key`` now (breaker open, or key dirty)."""
        return not self.breaker.closed or key in self.dirty

    def floor_for(self, key: Any, marker: int = 0) -> ReadFloor:
        """What a database load of ``key`` must at least see (``marker``: a marker's
        version found in Redis). A dirty key is read from the primary only."""
        version = max(self.acked.get(key), marker)
        if self.dirty.pending and key in self.dirty:
            return ReadFloor(max(version, self.dirty.version_of(key)), primary=True)
        return ReadFloor(version) if version else ANY_SOURCE

    # ----------------------------------------------------------- Redis answers

    def redis_answered(self) -> None:
        self.breaker.record_success()

    def redis_failed(self, exc: BaseException) -> None:
        """Count a Redis failure for the breaker (the hot path's own success is plain)."""
        if isinstance(exc, SharedReadFailed):
            return  # the load that issued the read already counted this failure
        if isinstance(exc, LoopStalled):
            metrics.LOOP_STALLS.inc()  # our loop was late, not Redis: the breaker stays out
            return
        if self.breaker.record_failure():
            metrics.BREAKER_OPEN.set(1)
            log.warning(
                "cache: Redis circuit breaker opened (last failure: %s: %s); "
                "loads go to the database",
                type(exc).__name__,
                exc,
            )
            self._announce(TierEvent.BREAKER_OPENED)

    def background_check_failed(self, exc: BaseException) -> None:
        """Count a failure of a periodic check (epoch watch, consistency sample).

        Only errors that say Redis is unreachable count for the breaker. A timeout of a
        check says little: nothing waits on it, and under a saturated event loop its reply
        sits behind the requests in flight until the deadline passes, though Redis answered
        at once (wrk at 32 connections opened the breaker this way every few seconds and sent
        a third of the warm loads to Postgres). The hot path's own reads and writes judge
        Redis's latency; a skipped check runs again at its next interval.
        """
        if isinstance(exc, REDIS_TIMEOUTS):
            metrics.BACKGROUND_TIMEOUTS.inc()
            return
        self.redis_failed(exc)

    # ---------------------------------------------------------------- breaker

    def probe_due(self, *, force: bool = False) -> bool:
        return self.breaker.probe_due(force=force)

    def probe_failed(self) -> None:
        self.breaker.probe_failed()

    def close_breaker(self) -> None:
        """Only once recovery has invalidated every dirty user (invariant 7)."""
        self.breaker.close()
        metrics.BREAKER_OPEN.set(0)
        log.warning("cache: Redis answers again; circuit breaker closed")
        self._announce(TierEvent.BREAKER_CLOSED)

    # ------------------------------------------------------------- generation

    def set_generation(self, generation: int) -> bool:
        """Read ``generation`` from now on, unless it is lower than one already known.

        Returns False (and changes nothing) for a lower one: a process never goes back.
        """
        if generation < self.known_generation:
            return False
        if generation != self.generation:
            self.known_generation = generation
            self.generation = generation
            metrics.GENERATION.set(generation)
            self._announce(TierEvent.GENERATION_CHANGED)
        return True

    def distrust(self) -> None:
        """Redis lost data: read nothing from it until a turnover sets a new generation."""
        if self.generation is not None:
            self.generation = None
            self._announce(TierEvent.GENERATION_CHANGED)

    # -------------------------------------------------------------- dirty set

    def mark_dirty(self, user_id: int, version: int) -> None:
        """A committed write Redis was not told about: loads of the user bypass Redis."""
        self.dirty.add(user_id, version)
        metrics.DIRTY_USERS.set(len(self.dirty))

    def mark_clean(self, user_id: int, version: int) -> None:
        """Redis holds ``version`` (or a marker at it) for the user now."""
        self.dirty.discard(user_id, version)
        metrics.DIRTY_USERS.set(len(self.dirty))

    def take_overflow(self) -> bool:
        """Claim the pending generation bump (``restore_overflow`` if it then fails)."""
        return self.dirty.take_overflow()

    def restore_overflow(self) -> None:
        self.dirty.mark_overflow()
