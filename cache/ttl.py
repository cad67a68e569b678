"""Key lifetimes with jitter (invariant 6): keys written together do not expire together."""

from __future__ import annotations

import random


class JitteredTtl:
    """Called for each write: the TTL in milliseconds, within ± ``jitter`` of ``ttl_ms``."""

    __slots__ = ("_jitter", "_ttl_ms")

    def __init__(self, ttl_ms: int, jitter: float) -> None:
        self._ttl_ms = ttl_ms
        self._jitter = jitter

    def __call__(self) -> int:
        return max(1, int(self._ttl_ms * (1.0 + self._jitter * (2.0 * random.random() - 1.0))))
