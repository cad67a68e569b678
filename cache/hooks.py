"""Hook points where tests stage races with ``asyncio.Event`` instead of sleeping.

Production code leaves every hook ``None``; each is one attribute check on a slow path
(a miss), never on a hit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from memlayer.records import MemoryContext

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class FillHooks(Generic[K, V]):
    # After the loader returned, before the fill script runs (stale-fill races).
    before_fill: Callable[[K, V], Awaitable[None]] | None = None
    # After this process took the fill lease, before it calls the loader.
    after_lease_acquired: Callable[[K], Awaitable[None]] | None = None
    # When another filler holds the lease, before this process starts polling.
    before_lease_wait: Callable[[K], Awaitable[None]] | None = None


# The hooks of the memory-context cache: keyed by user id.
CacheHooks = FillHooks[int, MemoryContext]
