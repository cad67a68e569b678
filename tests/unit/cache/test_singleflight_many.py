"""``SingleFlight.do_many``: the misses of many batches, one load per key in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest

from memlayer.cache.singleflight import SingleFlight


class Work:
    def __init__(self) -> None:
        self.calls: list[list[Hashable]] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.error: Exception | None = None

    async def __call__(self, keys: list[Hashable]) -> dict[Hashable, str]:
        self.calls.append(list(keys))
        self.started.set()
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return {key: f"v-{key}" for key in keys}


async def test_keys_in_flight_are_joined_and_only_the_rest_run() -> None:
    flights: SingleFlight[str] = SingleFlight()
    first, second = Work(), Work()
    one = asyncio.create_task(flights.do_many(["a", "b"], first))
    await first.started.wait()
    two = asyncio.create_task(flights.do_many(["b", "c"], second))
    await second.started.wait()
    first.release.set()
    second.release.set()

    assert await one == {"a": "v-a", "b": "v-b"}
    assert await two == {"b": "v-b", "c": "v-c"}
    assert first.calls == [["a", "b"]] and second.calls == [["c"]]
    assert len(flights) == 0


async def test_single_key_callers_join_a_batch_and_the_other_way_round() -> None:
    flights: SingleFlight[str] = SingleFlight()
    batch = Work()
    many = asyncio.create_task(flights.do_many(["a", "b"], batch))
    await batch.started.wait()

    async def never() -> str:
        raise AssertionError("a key in flight must be joined")

    one = asyncio.create_task(flights.do("a", never))
    batch.release.set()
    assert await one == "v-a"
    assert await many == {"a": "v-a", "b": "v-b"}


async def test_a_forgotten_key_starts_afresh_while_joiners_keep_theirs() -> None:
    flights: SingleFlight[str] = SingleFlight()
    old, new = Work(), Work()
    before = asyncio.create_task(flights.do_many(["a"], old))
    await old.started.wait()
    flights.forget("a")  # a write was acknowledged
    after = asyncio.create_task(flights.do_many(["a"], new))
    await new.started.wait()
    old.release.set()
    new.release.set()
    assert await before == {"a": "v-a"} and await after == {"a": "v-a"}
    assert old.calls == [["a"]] and new.calls == [["a"]]


async def test_an_error_reaches_every_caller_of_the_batch() -> None:
    flights: SingleFlight[str] = SingleFlight()
    work = Work()
    work.error = RuntimeError("down")
    first = asyncio.create_task(flights.do_many(["a", "b"], work))
    await work.started.wait()
    joiner = asyncio.create_task(flights.do_many(["b"], Work()))
    work.release.set()
    for task in (first, joiner):
        with pytest.raises(RuntimeError, match="down"):
            await task
    assert len(flights) == 0


async def test_work_that_began_too_long_ago_is_not_joined() -> None:
    flights: SingleFlight[str] = SingleFlight(max_age_s=0.0)
    old, new = Work(), Work()
    before = asyncio.create_task(flights.do_many(["a"], old))
    await old.started.wait()
    after = asyncio.create_task(flights.do_many(["a"], new))
    await new.started.wait()
    old.release.set()
    new.release.set()
    await asyncio.gather(before, after)
    assert new.calls == [["a"]]
