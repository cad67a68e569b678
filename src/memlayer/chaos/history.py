"""The log of acknowledged writes, and the check every read of the chaos run goes through.

The guarantee under test (docs/architecture.md, invariant 7): once a write is acknowledged, every
process serves it (or something newer) within a bound. So a read that STARTED more than
the bound after a write to its user was acknowledged, and returned an older version, is a
stale read beyond the bound. A read's *staleness* is how long before it started the oldest
acknowledged write it does not reflect was acknowledged (0 when it reflects them all).

Times are one clock of the one process that sends every request (``time.monotonic``). The
acknowledgement time is taken after the answer arrived and the start time before the
request left, so any delay of the client itself makes a read look fresher, never staler:
a stale read reported here is one.

Versions: a memory write over HTTP answers with the version it produced. A chat turn does
not say; but each user has ONE writer that waits for each write before the next, and every
saved turn bumps the user's version, so a turn acknowledged after a write acknowledged at
version v produced at least v + 1. The log keeps these lower bounds (``next_floor``); a
read older than a lower bound is older than the write.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ReadVerdict:
    """What one read saw, against the writes acknowledged before it started."""

    staleness: float  # seconds; 0.0 when the read reflects every acknowledged write
    expected: int  # the newest acknowledged version (or lower bound) when it started

    def beyond(self, bound: float) -> bool:
        return self.staleness > bound


@dataclass(slots=True)
class _UserLog:
    times: list[float] = field(default_factory=list)  # acknowledgement times, ascending
    versions: list[int] = field(default_factory=list)  # their versions, non-decreasing


class AckLog:
    """Acknowledged writes per user: (time, version), in the order the writer saw them."""

    __slots__ = ("_users", "count")

    def __init__(self) -> None:
        self._users: dict[int, _UserLog] = {}
        self.count = 0

    def acknowledged(self, user_id: int, version: int, at: float) -> None:
        """Record a write acknowledged at ``at`` that produced ``version`` (or more)."""
        log = self._users.setdefault(user_id, _UserLog())
        if log.times and at < log.times[-1]:
            raise ValueError("acknowledgements of one user must be recorded in time order")
        # One writer per user: versions only rise. Keep the log monotonic even if a lower
        # bound was generous, so the check stays a binary search.
        log.times.append(at)
        log.versions.append(max(version, log.versions[-1]) if log.versions else version)
        self.count += 1

    def next_floor(self, user_id: int) -> int:
        """The least version the user's next saved write can have (see the module doc)."""
        log = self._users.get(user_id)
        return log.versions[-1] + 1 if log and log.versions else 1

    def check(self, user_id: int, version: int, started: float) -> ReadVerdict:
        """Judge a read of ``user_id`` that started at ``started`` and returned ``version``."""
        log = self._users.get(user_id)
        if log is None:
            return ReadVerdict(0.0, 0)
        known = bisect.bisect_right(log.times, started)  # acknowledged before the read
        if known == 0:
            return ReadVerdict(0.0, 0)
        expected = log.versions[known - 1]
        if version >= expected:
            return ReadVerdict(0.0, expected)
        # The oldest write the read misses: the first one with a version above it.
        missed = bisect.bisect_right(log.versions, version, 0, known)
        return ReadVerdict(started - log.times[missed], expected)
