"""Redis commands per chat turn: ``INFO commandstats`` read before and after a load run.

The near-cache exists to take Redis round trips off the hot path; this is the number that
shows it from Redis's side, whatever the service's own counters say. Every command the
server executed between the two readings counts (the service's background work included:
epoch checks, outbox drains, lag probes), divided by the chat turns Locust completed, so
runs with the near-cache on and off (``MEMLAYER_NEAR_CACHE_ENABLED=false``) compare
directly. The count is server-wide: run against a Redis of the load test's own
(``scripts/loadtest.sh`` starts one) or other clients' commands count too.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis


def commandstats(url: str) -> dict[str, int]:
    """Calls per command since the server started (``INFO commandstats``)."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        info = client.info("commandstats")
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in info.items()
        if isinstance(stats, Mapping) and "calls" in stats
    }


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Calls between two readings, per command (commands not called are left out)."""
    calls = {name: n - before.get(name, 0) for name, n in after.items()}
    return {name: n for name, n in calls.items() if n > 0}


def per_turn_lines(calls: Mapping[str, int], turns: int, top: int = 8) -> list[str]:
    """A short table: total commands per turn, then the busiest commands per turn."""
    total = sum(calls.values())
    if turns <= 0:
        return [f"redis commands: {total:,} (no chat turn completed: no per-turn figure)"]
    lines = [
        f"redis commands per turn: {total / turns:.2f}  ({total:,} commands / {turns:,} turns)"
    ]
    for name, n in sorted(calls.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"  {name:<24} {n / turns:8.2f} per turn  ({n:,})")
    return lines
