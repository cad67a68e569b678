"""Where the near-cache can run, and how probe sightings become lag samples."""

from __future__ import annotations

import pytest

from memlayer.cache.invalidation import NearAvailability, near_availability
from memlayer.cache.keys import ProbeKey
from memlayer.cache.lag_probe import LagObserver
from memlayer.settings import Settings

MS = 1_000_000


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"near_cache_enabled": True, "redis_url": "redis://h:6379/0"}, NearAvailability.AVAILABLE),
        ({"near_cache_enabled": False, "redis_url": "redis://h:6379/0"}, NearAvailability.DISABLED),
        ({"near_cache_enabled": True, "cache_enabled": False}, NearAvailability.CACHE_DISABLED),
        ({"near_cache_enabled": True, "redis_url": None}, NearAvailability.EMBEDDED),
        (
            {"near_cache_enabled": True, "redis_url": "redis+cluster://h:7000"},
            NearAvailability.CLUSTER,
        ),
        (
            {"near_cache_enabled": True, "redis_url": "rediss+cluster://h:7000"},
            NearAvailability.CLUSTER,
        ),
    ],
)
def test_the_near_cache_runs_only_where_redis_can_track_for_it(
    overrides: dict[str, object], expected: NearAvailability
) -> None:
    assert near_availability(Settings(**overrides)) is expected  # type: ignore[arg-type]


def test_the_near_cache_is_on_by_default_and_one_setting_turns_it_off() -> None:
    # On by default since it is in the load path and the chaos run kept the bound with it
    # (docs/near-cache.md, "Evidence").
    url = "redis://h:6379/0"
    assert near_availability(Settings(redis_url=url)) is NearAvailability.AVAILABLE
    off = Settings(redis_url=url, near_cache_enabled=False)
    assert near_availability(off) is NearAvailability.DISABLED


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000 * MS

    def __call__(self) -> int:
        return self.now


def test_a_probe_is_sampled_once_at_its_write_not_at_its_expiry() -> None:
    clock, samples = Clock(), []
    observer = LagObserver(5000, record=samples.append, clock_ns=clock)
    observer.link_established()
    probe = ProbeKey(1, clock.now)

    clock.now += 2 * MS
    observer.probe_seen(probe)  # its write
    clock.now += 5000 * MS
    observer.probe_seen(probe)  # its expiry

    assert samples == [0.002]


def test_probes_written_before_the_link_was_established_are_ignored() -> None:
    clock, samples = Clock(), []
    observer = LagObserver(5000, record=samples.append, clock_ns=clock)
    old = ProbeKey(1, clock.now - 10 * MS)
    observer.link_established()

    observer.probe_seen(old)  # may be its expiry: its write was before we listened

    assert samples == []


def test_a_sighting_older_than_the_probe_lifetime_is_an_expiry_even_if_forgotten() -> None:
    clock, samples = Clock(), []
    observer = LagObserver(5000, record=samples.append, clock_ns=clock)
    observer.link_established()
    probe = ProbeKey(1, clock.now + 1)
    clock.now += 6000 * MS

    observer.probe_seen(probe)

    assert samples == []


def test_clock_skew_never_records_a_negative_lag() -> None:
    clock, samples = Clock(), []
    observer = LagObserver(5000, record=samples.append, clock_ns=clock)
    observer.link_established()

    observer.probe_seen(ProbeKey(2, clock.now + 3 * MS))  # a writer whose clock runs ahead

    assert samples == [0.0]
