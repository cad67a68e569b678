"""Which seeded user comes back next: a Zipf-like popularity law.

Real chat traffic is skewed: a few users come back all the time, most rarely. The cache's
hit ratio depends on that skew, so the load test draws returning users from it instead of
uniformly. Rank 0 is the first row of the credentials file; every Locust process ranks the
same file the same way, so in distributed mode all workers share one set of hot users.

Pure module (no Locust import) so that unit tests can use it without gevent patching.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def zipf_weights(n: int, exponent: float) -> list[float]:
    """Normalised probabilities of ranks ``0..n-1``, ``P(k) ∝ 1 / (k + 1) ** exponent``.

    ``exponent == 0`` is the uniform law; around 1 is the classic web-traffic skew.
    """
    if n < 1:
        raise ValueError("need at least one item to pick from")
    if exponent < 0:
        raise ValueError("a negative exponent would favour the least popular items")
    raw = [1.0 / (rank + 1) ** exponent for rank in range(n)]
    total = sum(raw)
    return [weight / total for weight in raw]


class ZipfPicker:
    """Draws ranks with :func:`zipf_weights`, in O(log n) per draw."""

    def __init__(self, n: int, exponent: float, rng: random.Random | None = None) -> None:
        self.n = n
        self._cumulative = list(itertools.accumulate(zipf_weights(n, exponent)))
        self._rng = rng or random.Random()

    def pick(self) -> int:
        # The last cumulative weight may be 0.99999…: clamp so a draw above it stays in range.
        rank = bisect.bisect_right(self._cumulative, self._rng.random())
        return min(rank, self.n - 1)

    def choice(self, items: Sequence[T]) -> T:
        if len(items) != self.n:
            raise ValueError(f"picker ranks {self.n} items, got {len(items)}")
        return items[self.pick()]
