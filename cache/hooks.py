"""Hook points where tests stage races with ``asyncio.Event`` instead of sleeping.

Production code leaves every hook ``None``; each is one attribute check on a slow path
(a miss), never on a hit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from memlayer.records import MemoryContext


@dataclass(slots=True)
class CacheHooks:
    # After the loader returned, before the fill script runs (stale-fill races).
    before_fill: Callable[[int, MemoryContext], Awaitable[None]] | None = None
    # After this process took the fill lease, before it calls the loader.
    after_lease_acquired: Callable[[int], Awaitable[None]] | None = None
    # When another filler holds the lease, before this process starts polling.
    before_lease_wait: Callable[[int], Awaitable[None]] | None = None
