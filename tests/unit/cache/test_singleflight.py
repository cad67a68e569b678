"""Single-flight: one execution per key, shared result, cancellation-safe."""

from __future__ import annotations

import asyncio

import pytest

from memlayer.cache.singleflight import SingleFlight


async def test_concurrent_callers_share_one_execution() -> None:
    flights: SingleFlight[int] = SingleFlight()
    gate = asyncio.Event()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 7

    waiters = [asyncio.create_task(flights.do("k", work)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()

    assert await asyncio.gather(*waiters) == [7] * 50
    assert calls == 1
    assert len(flights) == 0


async def test_a_cancelled_waiter_does_not_cancel_the_others() -> None:
    flights: SingleFlight[str] = SingleFlight()
    started, gate = asyncio.Event(), asyncio.Event()

    async def work() -> str:
        started.set()
        await gate.wait()
        return "value"

    first = asyncio.create_task(flights.do("k", work))
    await started.wait()
    second = asyncio.create_task(flights.do("k", work))
    third = asyncio.create_task(flights.do("k", work))
    await asyncio.sleep(0)

    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.set()

    assert await second == "value"
    assert await third == "value"


async def test_the_work_finishes_even_if_every_waiter_leaves() -> None:
    flights: SingleFlight[str] = SingleFlight()
    started, gate, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def work() -> str:
        started.set()
        await gate.wait()
        finished.set()
        return "value"

    only = asyncio.create_task(flights.do("k", work))
    await started.wait()
    only.cancel()
    gate.set()

    await finished.wait()
    assert finished.is_set()


async def test_an_exception_reaches_every_waiter() -> None:
    flights: SingleFlight[int] = SingleFlight()
    gate = asyncio.Event()

    class Boom(Exception):
        pass

    async def work() -> int:
        await gate.wait()
        raise Boom

    waiters = [asyncio.create_task(flights.do("k", work)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)

    assert all(isinstance(r, Boom) for r in results)


async def test_keys_are_independent_and_a_finished_flight_runs_again() -> None:
    flights: SingleFlight[str] = SingleFlight()
    calls: list[str] = []

    def work_for(key: str):  # type: ignore[no-untyped-def]
        async def work() -> str:
            calls.append(key)
            return key

        return work

    assert await asyncio.gather(flights.do("a", work_for("a")), flights.do("b", work_for("b"))) == [
        "a",
        "b",
    ]
    assert await flights.do("a", work_for("a")) == "a"
    assert calls == ["a", "b", "a"]
