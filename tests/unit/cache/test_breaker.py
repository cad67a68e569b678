"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

from memlayer.cache.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = CircuitBreaker(3, 2.0, Clock())

    assert not breaker.record_failure()
    assert not breaker.record_failure()
    assert breaker.record_failure()

    assert breaker.state is BreakerState.OPEN and not breaker.closed


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(3, 2.0, Clock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()

    assert breaker.closed


def test_one_probe_after_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 2.0, clock)
    breaker.record_failure()

    assert not breaker.probe_due()
    clock.now += 2.0
    assert breaker.probe_due()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.probe_due(), "only one probe at a time"
    assert not breaker.closed, "half-open still bypasses Redis"


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 2.0, clock)
    breaker.record_failure()
    clock.now += 2.0
    assert breaker.probe_due()

    breaker.probe_failed()
    clock.now += 1.0

    assert breaker.state is BreakerState.OPEN
    assert not breaker.probe_due()
    clock.now += 1.0
    assert breaker.probe_due()


def test_close_only_when_told() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 2.0, clock)
    breaker.record_failure()
    assert breaker.probe_due(force=True)

    breaker.close()

    assert breaker.closed and breaker.state is BreakerState.CLOSED
    assert breaker.record_failure(), "failures count from zero again after closing"
