"""A circuit breaker, so a dead Redis costs one timeout per cooldown, not one per load.

States: CLOSED (use Redis), OPEN (bypass Redis until the cooldown has passed),
HALF_OPEN (one recovery probe is running; everyone else still bypasses). The breaker
does not close itself on a successful probe: the cache closes it only after it has
invalidated what it wrote nowhere during the outage (invariant 7), so a read can never
see a context older than an acknowledged write.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker with a cooldown. Not thread-safe (one event loop)."""

    __slots__ = ("_clock", "_cooldown", "_failures", "_opened_at", "_threshold", "closed", "state")

    def __init__(
        self,
        failure_threshold: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failure_threshold
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self.state = BreakerState.CLOSED
        # A plain attribute, read on every load: cheaper than a property.
        self.closed = True

    def record_success(self) -> None:
        self._failures = 0

    def record_failure(self) -> bool:
        """Count a failed Redis call; returns True if this failure opened the breaker."""
        self._failures += 1
        if self.state is BreakerState.CLOSED and self._failures >= self._threshold:
            self._open()
            return True
        return False

    def probe_due(self, *, force: bool = False) -> bool:
        """True exactly once per cooldown: the caller must run the probe and report back.

        ``force`` skips the cooldown (an operator or a test asking to recover now).
        """
        if self.state is BreakerState.OPEN and (
            force or self._clock() - self._opened_at >= self._cooldown
        ):
            self.state = BreakerState.HALF_OPEN
            return True
        return False

    def probe_failed(self) -> None:
        self._open()

    def close(self) -> None:
        """Called by the cache once recovery (dirty-set invalidation) has finished."""
        self._failures = 0
        self.state = BreakerState.CLOSED
        self.closed = True

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self.closed = False
        self._opened_at = self._clock()
