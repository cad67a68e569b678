"""What other key families on the same Redis need of the process's cache tier.

The memory-context cache (``context_cache``) owns the process's view of Redis: the
breaker, the generation and its epoch watch, recovery. A second key family (the LangGraph
store's namespaces, ``memlayer.store``) must not build a second one (two breakers would
disagree about one Redis, two epoch watches would race turnovers): it takes this handle
from :attr:`ContextCache.tier <memlayer.cache.context_cache.ContextCache.tier>` and asks
the same questions the context cache asks itself before a read or a write. It shares the
near-cache too (one byte bound, one invalidation link), under keys of its own family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memlayer.cache.epoch import EpochWatch, TurnoverReason
from memlayer.cache.invalidation import InvalidationLink
from memlayer.cache.near import NearCache
from memlayer.cache.recovery import Recovery
from memlayer.cache.state import TierState


def _no_link() -> InvalidationLink | None:
    return None


@dataclass(frozen=True, slots=True)
class SharedTier:
    state: TierState
    epoch: EpochWatch
    recovery: Recovery
    # The process's ONE near-cache (None: it keeps nothing), shared by every family under
    # keys of its own (``near``); it serves while the link attached to it is established.
    near: NearCache[Any] | None = None
    # The link attached to the near-cache now (attached after start-up, so asked for when
    # needed): a re-check of a near hit waits for a barrier on it.
    near_link: Callable[[], InvalidationLink | None] = _no_link

    async def generation_to_read(self) -> int | None:
        """The generation a read may use now; None: bypass Redis (breaker open, or the
        generation is not known yet / a turnover is pending). Never raises."""
        state = self.state
        if state.breaker.closed and state.generation is None:
            await self.recovery.establish()
        if not state.breaker.closed:
            self.recovery.probe_if_due()
            return None
        return state.generation

    async def generation_for_write(self) -> int | None:
        """The generation to write into, read fresh from Redis (``EpochWatch.for_write``);
        None: defer, the outbox covers the write. Raises Redis errors."""
        if self.state.generation is None:
            await self.recovery.establish()
        generation = await self.epoch.for_write()
        if generation is None:
            self.recovery.check_soon()
        return generation

    async def turn_over(self, reason: TurnoverReason) -> None:
        """Orphan every family's cached values now. Raises Redis errors."""
        await self.recovery.turn_over(reason)
