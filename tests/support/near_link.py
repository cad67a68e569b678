"""Helpers for tests of the near-cache's invalidation link: a recording subscriber."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from memlayer.cache.keys import EntityKey


class Recorder:
    """A ``LinkSubscriber`` that keeps every event, with events tests can await."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.keys: list[EntityKey] = []
        self.established = asyncio.Event()
        self.lost = asyncio.Event()
        self.flushed_event = asyncio.Event()
        self._changed = asyncio.Event()

    def link_established(self) -> None:
        self.events.append("established")
        self.lost.clear()
        self.established.set()

    def link_lost(self) -> None:
        self.events.append("lost")
        self.established.clear()
        self.lost.set()

    def flushed(self) -> None:
        self.events.append("flushed")
        self.flushed_event.set()

    def invalidated(self, keys: Sequence[EntityKey]) -> None:
        self.keys.extend(keys)
        self._changed.set()

    def epoch_changed(self) -> None:
        self.events.append("epoch_changed")

    async def key(self, wanted: EntityKey) -> None:
        """Until ``wanted`` has been invalidated (callers bound it with a timeout)."""
        while wanted not in self.keys:
            self._changed.clear()
            await self._changed.wait()
