"""`memlayer bench-near-policy`: which eviction policy should the near-cache use?

Replays Zipf workloads over many users (reads, and a share of writes, each of which
evicts the user's entry the way an invalidation does) against LRU and frequency-aware
policies from kept libraries, at several capacities, and prints hit ratios; then the
per-operation cost of each policy and of the near-cache's own hit and fill paths.

Workloads: a static Zipf popularity for each exponent, plus "drift": the same Zipf(1.0)
whose popular users change ten times during the run (users who were hot go cold, as over
a day). A frequency-aware policy wins on a static head; LRU adapts to drift.

Pure CPU, no services. W-TinyLFU (``theine``) is measured when it is installed
(``pip install theine``); it is not a dependency.
"""

from __future__ import annotations

import importlib
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import LFUCache, LRUCache

from memlayer.cache.keys import CONTEXT_FAMILY
from memlayer.cache.near import NearCache


class Policy(Protocol):
    def get(self, key: int) -> object | None: ...

    def put(self, key: int, value: object) -> None: ...

    def delete(self, key: int) -> None: ...


class _Cachetools:
    def __init__(self, cache: Any) -> None:
        self._cache = cache
        self.get = cache.get

    def put(self, key: int, value: object) -> None:
        self._cache[key] = value

    def delete(self, key: int) -> None:
        self._cache.pop(key, None)


class _Theine:
    def __init__(self, capacity: int) -> None:
        theine: Any = importlib.import_module("theine")
        self._cache = theine.Cache(capacity, nolock=True)

    def get(self, key: int) -> object | None:
        value, found = self._cache.get(key)
        return value if found else None

    def put(self, key: int, value: object) -> None:
        self._cache.set(key, value)

    def delete(self, key: int) -> None:
        self._cache.delete(key)


def _theine_installed() -> bool:
    return importlib.util.find_spec("theine") is not None


def policies() -> dict[str, Callable[[int], Policy]]:
    """The candidates, by name (each from a kept library)."""
    found: dict[str, Callable[[int], Policy]] = {
        "lru (cachetools)": lambda n: _Cachetools(LRUCache(n)),
        "lfu (cachetools)": lambda n: _Cachetools(LFUCache(n)),
    }
    if _theine_installed():
        found["w-tinylfu (theine)"] = _Theine
    return found


@dataclass(frozen=True)
class Workload:
    name: str
    stream: list[int]  # user ids
    writes: list[bool]  # True: this op is a write (evicts the user's entry)


def zipf_workload(
    users: int, exponent: float, ops: int, write_share: float, *, drift: bool, seed: int = 1
) -> Workload:
    rnd = random.Random(seed)
    weights = itertools.accumulate(1.0 / rank**exponent for rank in range(1, users + 1))
    ranks = rnd.choices(range(users), cum_weights=list(weights), k=ops)
    order = list(range(users))
    rnd.shuffle(order)  # rank -> user id: popularity unrelated to ids
    if drift:
        phase, shift = max(1, ops // 10), max(1, users // 50)
        stream = [order[(r + (i // phase) * shift) % users] for i, r in enumerate(ranks)]
    else:
        stream = [order[r] for r in ranks]
    writes = [rnd.random() < write_share for _ in range(ops)]
    label = f"zipf s={exponent:g}" + (" drift" if drift else "")
    return Workload(label, stream, writes)


def hit_ratio(policy: Policy, workload: Workload) -> float:
    hits = reads = 0
    get, put, delete = policy.get, policy.put, policy.delete
    for user, write in zip(workload.stream, workload.writes, strict=True):
        if write:
            delete(user)
            continue
        reads += 1
        if get(user) is not None:
            hits += 1
        else:
            put(user, user)
    return hits / reads if reads else 0.0


def _per_op_us(run: Callable[[], None], ops: int) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / ops * 1e6


def policy_costs(make: Callable[[int], Policy], capacity: int, ops: int) -> tuple[float, float]:
    """(µs per hit, µs per miss-and-insert at capacity), Python loop included."""
    policy = make(capacity)
    for user in range(capacity):
        policy.put(user, user)
    present = [random.randrange(capacity) for _ in range(ops)]
    fresh = range(capacity, capacity + ops)

    def hits() -> None:
        get = policy.get
        for user in present:
            get(user)

    def inserts() -> None:
        put = policy.put
        for user in fresh:
            put(user, user)

    return _per_op_us(hits, ops), _per_op_us(inserts, ops)


def near_costs(capacity: int, ops: int) -> tuple[float, float]:
    """The near-cache's own paths: a served hit, and a fill (ticket, settle, evictions)."""
    near: NearCache[int] = NearCache(
        max_entries=capacity,
        max_bytes=capacity * 4096,
        max_age_s=3600.0,
        version_of=lambda v: 1,
        recheck_fraction=0.01,
        recheck=lambda key, entry: None,
    )
    near.link_established()
    raw = b"x" * 3000

    def decode(_raw: bytes) -> int:
        return 1

    for user in range(capacity):
        near.settle(near.begin((CONTEXT_FAMILY, user)), raw, 1, decode)
    present = [(CONTEXT_FAMILY, random.randrange(capacity)) for _ in range(ops)]
    fresh = [(CONTEXT_FAMILY, user) for user in range(capacity, capacity + ops)]

    def hits() -> None:
        get = near.get
        for key in present:
            get(key, 1)

    def fills() -> None:
        begin, settle = near.begin, near.settle
        for key in fresh:
            settle(begin(key), raw, 1, decode)

    return _per_op_us(hits, ops), _per_op_us(fills, ops)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(cell).rjust(w) for cell, w in zip(row, widths, strict=True)))


def run_near_policy_bench(
    *,
    users: int,
    ops: int,
    write_share: float,
    exponents: Sequence[float],
    capacities: Sequence[float],
    cost_ops: int,
) -> int:
    candidates = policies()
    if not _theine_installed():
        print("note: theine is not installed; `pip install theine` adds W-TinyLFU to the table")
    workloads = [(exponent, False) for exponent in exponents] + [(1.0, True)]  # the drift scenario
    rows: list[list[str]] = []
    started = time.perf_counter()
    for exponent, drift in workloads:
        workload = zipf_workload(users, exponent, ops, write_share, drift=drift)
        for share in capacities:
            capacity = max(1, int(users * share))
            ratios = [hit_ratio(make(capacity), workload) for make in candidates.values()]
            rows.append([workload.name, f"{capacity} ({share:.1%})", *(f"{r:.3f}" for r in ratios)])
            print(
                f"  {workload.name:<16} capacity {capacity:>7}: "
                + "  ".join(f"{n}={r:.3f}" for n, r in zip(candidates, ratios, strict=True)),
                flush=True,
            )
    print(
        f"\nHit ratio of reads ({users} users, {ops} ops, {write_share:.0%} writes; "
        f"{time.perf_counter() - started:.0f} s)"
    )
    _table(["workload", "capacity", *candidates], rows)

    capacity = max(1, int(users * capacities[len(capacities) // 2]))
    cost_rows = []
    for name, make in candidates.items():
        hit_us, insert_us = policy_costs(make, capacity, cost_ops)
        cost_rows.append([name, f"{hit_us:.2f}", f"{insert_us:.2f}"])
    hit_us, fill_us = near_costs(capacity, cost_ops)
    cost_rows.append(["NearCache (lru, bounds, tickets)", f"{hit_us:.2f}", f"{fill_us:.2f}"])
    print(f"\nPer-operation cost at capacity {capacity} (µs, Python loop included)")
    _table(["policy", "hit", "miss+insert"], cost_rows)
    return 0
