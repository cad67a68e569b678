"""Which tier served each persona's memory, counted across Locust processes.

The ``memory_loaded`` event says where a turn's memory came from (``cache``, ``database``,
``none``). Counting it per persona answers the load test's real question: did returning
users get the cache, and did anonymous users stay off both tiers? In distributed mode each
worker drains its counts into its periodic report and the master merges them, so the totals
on the master are the whole swarm's. Pure module, usable without Locust.
"""

from __future__ import annotations

from collections import Counter, defaultdict

Counts = dict[str, dict[str, int]]


class MemorySourceTally:
    def __init__(self) -> None:
        self._counts: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def record(self, persona: str, source: str) -> None:
        self._counts[persona][source] += 1

    def merge(self, counts: Counts) -> None:
        for persona, sources in counts.items():
            self._counts[persona].update({str(source): int(n) for source, n in sources.items()})

    def snapshot(self) -> Counts:
        return {persona: dict(sources) for persona, sources in sorted(self._counts.items())}

    def drain(self) -> Counts:
        """The counts so far, then forget them (what a worker sends in each report)."""
        counts = self.snapshot()
        self._counts.clear()
        return counts

    def reset(self) -> None:
        self._counts.clear()
