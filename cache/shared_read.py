"""One Redis GET per key at a time, shared by every load of that key meanwhile.

A burst of loads for one user (hundreds in the same millisecond) would otherwise queue
hundreds of GETs behind the connection pool; the tail of that queue times out, and each
timed-out load falls back to Postgres after the first fill has already finished.
Joiners see the leader's value, or its error as a
:class:`~memlayer.cache.errors.SharedReadFailed` (one Redis failure counts once).

Once this process acknowledged a write for a key, a GET issued before may return the
older value: :meth:`SharedReads.forget` retires the read in flight, so later loads issue
their own while those that had joined still get the retired read's answer.

What is shared is whatever ``get`` returns: the raw bytes, or (the context cache) the bytes
with the near-cache's fill ticket the leader took before sending the GET, so joiners and the
leader agree on when the read began.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from memlayer.cache.errors import REDIS_ERRORS, SharedReadFailed

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

Get = Callable[[K, int], Awaitable[R]]
_Slot = asyncio.Future[R] | None


class _LeaderCancelled(Exception):
    """The load that issued a shared GET was cancelled; a joiner reads for itself."""


class SharedResults(Generic[K, R]):
    """Shares ``get(key, generation)`` among concurrent readers of one key (any result)."""

    __slots__ = ("_get", "_reads", "_retired", "_retirements")

    def __init__(self, get: Get[K, R]) -> None:
        self._get = get
        # key -> None while one read is in flight and nobody joined it yet, or the
        # future the leader will settle once someone has.
        self._reads: dict[K, _Slot[R]] = {}
        # Retired reads: key -> [(stamp, slot)], stamps increasing. A leader that
        # started when ``_retirements`` was n was retired iff its key has a stamp > n.
        self._retirements = 0
        self._retired: dict[K, list[tuple[int, _Slot[R]]]] = {}

    async def read(self, key: K, generation: int) -> R:
        if key in self._reads:
            shared = self._reads[key]
            if shared is None:  # the first joiner makes the future the leader will settle
                shared = self._reads[key] = asyncio.get_running_loop().create_future()
            try:
                return await asyncio.shield(shared)
            except _LeaderCancelled:
                return await self.read(key, generation)  # read it ourselves
            except REDIS_ERRORS as exc:
                raise SharedReadFailed() from exc
        # The leader: no future unless someone joins, so an uncontended hit pays two dict
        # operations and one integer comparison for this.
        started = self._retirements
        self._reads[key] = None
        try:
            raw = await self._get(key, generation)
        except BaseException as exc:
            shared = self._release(key, started)
            if shared is not None:
                cancelled = isinstance(exc, asyncio.CancelledError)
                shared.set_exception(_LeaderCancelled() if cancelled else exc)
                shared.exception()  # retrieved, even if every joiner has gone
            raise
        if self._retirements == started:
            shared = self._reads.pop(key, None)
        else:
            shared = self._release(key, started)
        if shared is not None:
            shared.set_result(raw)
        return raw

    def forget(self, key: K) -> None:
        """Later reads of ``key`` issue their own GET; joiners so far keep this one's."""
        if key not in self._reads:
            return
        self._retirements += 1
        self._retired.setdefault(key, []).append((self._retirements, self._reads.pop(key)))

    def _release(self, key: K, started: int) -> _Slot[R]:
        """The slot of the leader that started at ``started``: retired, or current."""
        retired = self._retired.get(key)
        if retired is not None:
            for i, (stamp, slot) in enumerate(retired):
                if stamp > started:
                    del retired[i]
                    if not retired:
                        del self._retired[key]
                    return slot
        return self._reads.pop(key, None)


class SharedReads(SharedResults[K, bytes | None]):
    """Shared GETs of raw values (the LangGraph store's namespaces); the context cache
    shares its GETs with their near-cache tickets (``SharedResults``)."""

    __slots__ = ()
