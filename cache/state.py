"""What this process believes about Redis, and the one place where that belief changes.

Three facts decide how a load may use Redis: the cache generation this process reads,
the circuit breaker, and the users whose last write Redis has not seen (the dirty set).
Loads read them as plain attributes on every call (``generation``, ``breaker.closed``,
``dirty.pending``); every *change* goes through a method here, which keeps the gauges
right and tells subscribers.

Subscribers are how tiers in front of this one stay safe: a per-process near-cache of
decoded values must be dropped whole when the generation turns over or the breaker
opens (DESIGN.md, "Tiers to come"). Redis restart or failover detection turns the
generation over through :meth:`TierState.set_generation` like a dirty-set overflow does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from enum import StrEnum

from memlayer.cache import metrics
from memlayer.cache.breaker import CircuitBreaker
from memlayer.cache.dirty import DirtyUsers
from memlayer.cache.errors import LoopStalled, SharedReadFailed

log = logging.getLogger("memlayer.cache")


class TierEvent(StrEnum):
    GENERATION_CHANGED = "generation_changed"
    BREAKER_OPENED = "breaker_opened"
    BREAKER_CLOSED = "breaker_closed"


# Called synchronously, in the order of the changes: a subscriber must not await (the
# breaker closes in the same step as the dirty set is found empty; see recovery).
Subscriber = Callable[[TierEvent], None]


class TierState:
    __slots__ = ("_subscribers", "breaker", "dirty", "generation")

    def __init__(self, breaker: CircuitBreaker, dirty: DirtyUsers) -> None:
        self.breaker = breaker
        self.dirty = dirty
        self.generation: int | None = None  # None until Redis has told us once
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def _announce(self, event: TierEvent) -> None:
        for subscriber in self._subscribers:
            subscriber(event)

    def bypasses(self, key: Hashable) -> bool:
        """True when Redis must not be used for ``key`` now (breaker open, or key dirty)."""
        return not self.breaker.closed or key in self.dirty

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
            log.warning("cache: Redis circuit breaker opened; loads go to the database")
            self._announce(TierEvent.BREAKER_OPENED)

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

    def set_generation(self, generation: int) -> None:
        if generation != self.generation:
            self.generation = generation
            metrics.GENERATION.set(generation)
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
