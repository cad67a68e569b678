"""A key family's view of the process's tier state: one Redis, one breaker, one generation.

The memory contexts own the :class:`~memlayer.cache.state.TierState` of a process; other
key families on the same Redis (the LangGraph store's namespaces) must share its breaker
(Redis is up or down for everyone), its generation (a turnover drops every family at
once) and its announcements, but keep their own dirty keys and acknowledged versions:
recovery installs context markers for the contexts' dirty set, and a family flushes its
own. Reads of the shared facts go straight through; failures are counted once, on the
shared breaker, so subscribers (memo, near-cache) hear of it whichever family saw it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from memlayer.cache.breaker import CircuitBreaker
from memlayer.cache.dirty import DirtyKeys
from memlayer.cache.recent import RecentVersions
from memlayer.cache.state import TierState
from memlayer.records import ANY_SOURCE, ReadFloor

K = TypeVar("K", bound=Hashable)


class FamilyState(Generic[K]):
    __slots__ = ("acked", "dirty", "shared")

    def __init__(self, shared: TierState, dirty: DirtyKeys[K], acked: RecentVersions[K]) -> None:
        self.shared = shared
        self.dirty = dirty
        self.acked = acked

    @property
    def breaker(self) -> CircuitBreaker:
        return self.shared.breaker

    @property
    def generation(self) -> int | None:
        return self.shared.generation

    def bypasses(self, key: K) -> bool:
        """True when Redis must not be used for ``key`` now (breaker open, or key dirty)."""
        return not self.shared.breaker.closed or key in self.dirty

    def floor_for(self, key: K, marker: int = 0) -> ReadFloor:
        """What a database load of ``key`` must at least see (``TierState.floor_for``)."""
        version = max(self.acked.get(key), marker)
        if self.dirty.pending and key in self.dirty:
            return ReadFloor(max(version, self.dirty.version_of(key)), primary=True)
        return ReadFloor(version) if version else ANY_SOURCE

    def redis_answered(self) -> None:
        self.shared.redis_answered()

    def redis_failed(self, exc: BaseException) -> None:
        self.shared.redis_failed(exc)
