"""Sampled re-checks: is a near hit what Redis holds now?

The near-cache hands a small fraction of its hits here (in the background, off the hit).
A re-check reads the key and compares versions. A difference is not yet proof of a stale
entry: the write may be a moment old, its invalidation on its way. So the re-check then
waits for a barrier on the invalidation link (a PING answered after everything Redis
queued to the link before it): if the key was invalidated meanwhile, the entry was
already on its way out (``RACED``); if not, the near-cache held a value Redis no longer
vouches for (``MISMATCH`` or ``MISSING``): the entry is evicted, and the result is what
the consistency checker counts (``memlayer_cache_consistency_checks_total{tier="near"}``:
a mismatch is ``stale``, a missing value ``missing``, a consistent or raced entry
``consistent``; the alert ``MemlayerNearCacheMissedInvalidation`` fires on the first two).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from memlayer.cache import near_metrics as metrics
from memlayer.cache.background import BackgroundTasks
from memlayer.cache.errors import REDIS_ERRORS, CacheError
from memlayer.cache.invalidation import InvalidationLink
from memlayer.cache.near import NearCache, NearEntry, NearKey

V = TypeVar("V")

log = logging.getLogger("memlayer.cache")

MAX_RECHECKS = 8  # re-checks out at once per family; further samples are skipped (counted)

_LINK_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, CacheError)


class RecheckResult(StrEnum):
    CONSISTENT = "consistent"  # Redis holds the same complete version
    MISMATCH = "mismatch"  # another version or a marker, and no invalidation came: evicted
    MISSING = "missing"  # no value, and no invalidation came: evicted
    RACED = "raced"  # the key was invalidated (or the cache dropped) meanwhile
    ERROR = "error"  # Redis or the link did not answer: nothing concluded


@dataclass(frozen=True, slots=True)
class Recheck:
    result: RecheckResult
    near_version: int
    redis_version: int | None  # None: no value, a marker, or no answer


_METRICS = {result: metrics.RECHECKS.labels(result.value) for result in RecheckResult}
# What the consistency checker counts for the near tier (an error concludes nothing).
_CHECKS = {
    RecheckResult.CONSISTENT: metrics.CHECK_CONSISTENT,
    RecheckResult.RACED: metrics.CHECK_CONSISTENT,
    RecheckResult.MISMATCH: metrics.CHECK_STALE,
    RecheckResult.MISSING: metrics.CHECK_MISSING,
}


async def recheck(
    near: NearCache[V],
    key: NearKey,
    entry: NearEntry[V],
    *,
    read: Callable[[], Awaitable[bytes | None]],
    complete_version: Callable[[bytes], int | None],
    barrier: Callable[[], Awaitable[None]],
) -> Recheck:
    """Re-read ``key`` (``read``: its GET at the entry's generation) and judge ``entry``.

    ``complete_version``: the version of a complete value, None for a marker.
    ``barrier``: the invalidation link's :meth:`~InvalidationLink.barrier`.
    """
    ticket = near.begin(key)
    try:
        try:
            raw = await read()
        except REDIS_ERRORS:
            return _done(RecheckResult.ERROR, entry, None)
        redis_version = complete_version(raw) if raw is not None else None
        if redis_version == entry.version:
            return _done(RecheckResult.CONSISTENT, entry, redis_version)
        try:
            await barrier()
        except _LINK_ERRORS:
            # The link failed: the near-cache has been dropped, or will be at once.
            return _done(RecheckResult.ERROR, entry, redis_version)
        if not near.valid(ticket):
            return _done(RecheckResult.RACED, entry, redis_version)
        near.evict_mismatch(key, entry)
        missing = raw is None
        return _done(
            RecheckResult.MISSING if missing else RecheckResult.MISMATCH, entry, redis_version
        )
    finally:
        near.finish(ticket)


def _done(result: RecheckResult, entry: NearEntry[V], redis_version: int | None) -> Recheck:
    _METRICS[result].inc()
    check = _CHECKS.get(result)
    if check is not None:
        check.inc()
    return Recheck(result, entry.version, redis_version)


class Rechecker(Generic[V]):
    """One key family's sampled re-checks, run in the background, a few at a time.

    Registered with :meth:`NearCache.set_recheck`. ``read`` is the family's GET of a key
    at an entry's generation, ``complete_version`` its codec's version of a complete
    value, ``describe`` how a log line names the entry ("user 42").
    """

    __slots__ = ("_background", "_complete_version", "_describe", "_link", "_near", "_out", "_read")

    def __init__(
        self,
        near: NearCache[V],
        background: BackgroundTasks,
        *,
        link: Callable[[], InvalidationLink | None],
        read: Callable[[NearKey, NearEntry[V]], Awaitable[bytes | None]],
        complete_version: Callable[[bytes], int | None],
        describe: Callable[[NearKey, NearEntry[V]], str],
    ) -> None:
        self._near = near
        self._background = background
        self._link = link
        self._read = read
        self._complete_version = complete_version
        self._describe = describe
        self._out: set[asyncio.Task[None]] = set()

    def __call__(self, key: NearKey, entry: NearEntry[V]) -> None:
        link = self._link()
        if link is None or len(self._out) >= MAX_RECHECKS:
            metrics.RECHECKS_SKIPPED.inc()
            return
        task = self._background.spawn(self._run(key, entry, link))
        self._out.add(task)
        task.add_done_callback(self._out.discard)

    async def settled(self) -> None:
        """Until every re-check started so far has finished (tests, ops)."""
        if self._out:
            await asyncio.wait(set(self._out))

    async def _run(self, key: NearKey, entry: NearEntry[V], link: InvalidationLink) -> None:
        found = await recheck(
            self._near,
            key,
            entry,
            read=lambda: self._read(key, entry),
            complete_version=self._complete_version,
            barrier=link.barrier,
        )
        if found.result is RecheckResult.MISMATCH or found.result is RecheckResult.MISSING:
            log.error(
                "near-cache: %s was served v%s from process memory while Redis held %s "
                "and no invalidation had come; evicted (see docs/runbook.md)",
                self._describe(key, entry),
                found.near_version,
                "nothing" if found.redis_version is None else f"v{found.redis_version}",
            )
