"""The chaos run's judge: a read that started more than the bound after a write it misses."""

from __future__ import annotations

import pytest

from memlayer.chaos.history import AckLog

BOUND = 2.0


def test_a_read_reflecting_every_acknowledged_write_is_fresh() -> None:
    log = AckLog()
    log.acknowledged(7, 3, at=10.0)
    verdict = log.check(7, 3, started=20.0)
    assert verdict.staleness == 0.0 and verdict.expected == 3
    assert log.check(7, 4, started=20.0).staleness == 0.0  # newer than known: fine


def test_staleness_counts_from_the_oldest_acknowledged_write_the_read_misses() -> None:
    log = AckLog()
    log.acknowledged(7, 3, at=10.0)
    log.acknowledged(7, 4, at=11.0)
    log.acknowledged(7, 5, at=12.5)
    verdict = log.check(7, 3, started=13.0)  # misses 4 (acknowledged at 11.0) and 5
    assert verdict.staleness == pytest.approx(2.0) and verdict.expected == 5
    assert not verdict.beyond(BOUND)
    assert log.check(7, 3, started=13.5).beyond(BOUND)
    assert log.check(7, 4, started=13.5).staleness == pytest.approx(1.0)


def test_writes_acknowledged_after_the_read_started_do_not_count() -> None:
    log = AckLog()
    log.acknowledged(7, 3, at=10.0)
    log.acknowledged(7, 9, at=30.0)
    assert log.check(7, 3, started=29.9).staleness == 0.0
    assert log.check(7, 2, started=12.0).staleness == pytest.approx(2.0)


def test_users_are_judged_apart_and_an_unwritten_user_is_never_stale() -> None:
    log = AckLog()
    log.acknowledged(1, 5, at=1.0)
    assert log.check(2, 0, started=100.0).staleness == 0.0
    assert log.check(1, 0, started=100.0).staleness == pytest.approx(99.0)


def test_a_turn_without_a_version_counts_as_at_least_one_above_the_last_ack() -> None:
    log = AckLog()
    assert log.next_floor(7) == 1
    log.acknowledged(7, log.next_floor(7), at=1.0)  # a chat turn: version >= 1
    log.acknowledged(7, 6, at=2.0)  # a forget answered with its version
    assert log.next_floor(7) == 7
    log.acknowledged(7, 5, at=3.0)  # a generous lower bound never lowers the floor
    assert log.next_floor(7) == 7 and log.count == 3


def test_acknowledgements_of_a_user_must_come_in_time_order() -> None:
    log = AckLog()
    log.acknowledged(7, 1, at=5.0)
    with pytest.raises(ValueError):
        log.acknowledged(7, 2, at=4.0)
