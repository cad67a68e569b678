"""A second process holding one near-cache entry, reporting when Redis evicts it.

Run as ``python -m tests.support.near_child <redis url> <prefix> <user id> <generation>``
from the repository root. Prints one JSON line when it is listening (``{"ready": ...}``),
then one when the entry's invalidation was handled (or after 30 s without it).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence

from memlayer.cache.codec import encode
from memlayer.cache.invalidation import InvalidationLink
from memlayer.cache.keys import CONTEXT_FAMILY, EntityKey
from memlayer.cache.near import NearCache
from memlayer.records import MemoryContext
from memlayer.settings import Settings
from tests.support.contexts import make_context

WAIT_S = 30.0


class _Watch:
    def __init__(self, wanted: EntityKey) -> None:
        self.wanted = wanted
        self.evicted_ns: int | None = None
        self.flushes = 0
        self.done = asyncio.Event()

    def link_established(self) -> None: ...

    def link_lost(self) -> None: ...

    def flushed(self) -> None:  # someone else's FLUSHDB on a shared Redis: reported apart
        self.flushes += 1

    def epoch_changed(self) -> None: ...

    def invalidated(self, keys: Sequence[EntityKey]) -> None:
        if self.wanted in keys and not self.done.is_set():
            self.evicted_ns = time.time_ns()
            self.done.set()


async def main(url: str, prefix: str, user_id: int, generation: int) -> None:
    link = InvalidationLink.for_url(url, prefix, Settings(redis_url=url))
    near: NearCache[MemoryContext] = NearCache(
        max_entries=10, max_bytes=1 << 20, max_age_s=3600.0, version_of=lambda c: c.version
    )
    watch = _Watch(EntityKey(CONTEXT_FAMILY, user_id, generation))
    link.subscribe(near)  # the near-cache first: it has evicted when the watch notes the time
    link.subscribe(watch)
    link.start()
    await asyncio.wait_for(link.wait_established(), WAIT_S)
    context = make_context(user_id, version=1)
    near.plant((CONTEXT_FAMILY, user_id), context, encode(context), generation)
    cached = near.get((CONTEXT_FAMILY, user_id), generation) is not None
    print(json.dumps({"ready": True, "cached": cached}), flush=True)
    try:
        await asyncio.wait_for(watch.done.wait(), WAIT_S)
    except TimeoutError:
        pass
    still = near.get((CONTEXT_FAMILY, user_id), generation) is not None
    report = {"evicted_ns": watch.evicted_ns, "still_cached": still, "flushes": watch.flushes}
    print(json.dumps(report), flush=True)
    await link.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
