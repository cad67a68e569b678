"""``TickBatches``: requests of one event-loop iteration run together, once."""

from __future__ import annotations

import asyncio

import pytest

from memlayer.store.coalesce import TickBatches


class Runner:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self, requests: list[int]) -> list[int]:
        self.batches.append(list(requests))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return [r * 10 for r in requests]


async def test_requests_of_one_iteration_run_as_one_batch() -> None:
    runner = Runner()
    batches: TickBatches[int, int] = TickBatches(runner)

    together = await asyncio.gather(*(batches.submit(i) for i in range(5)))
    alone = await batches.submit(7)

    assert together == [0, 10, 20, 30, 40] and alone == 70
    assert runner.batches == [[0, 1, 2, 3, 4], [7]]


async def test_a_batch_in_flight_is_never_joined() -> None:
    """A read issued while a batch runs waits for the next one: no read joins work that
    began before it was issued."""
    runner = Runner()
    runner.gate = asyncio.Event()
    batches: TickBatches[int, int] = TickBatches(runner)
    first = asyncio.create_task(batches.submit(1))
    await runner.started.wait()  # the first batch is running
    second = asyncio.create_task(batches.submit(2))
    runner.gate.set()
    assert (await first, await second) == (10, 20)
    assert runner.batches == [[1], [2]]


async def test_the_batch_s_error_reaches_each_of_its_callers() -> None:
    runner = Runner()
    runner.error = RuntimeError("the database is down")
    batches: TickBatches[int, int] = TickBatches(runner)
    outcomes = await asyncio.gather(batches.submit(1), batches.submit(2), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)


async def test_a_cancelled_caller_leaves_the_others_their_results() -> None:
    runner = Runner()
    runner.gate = asyncio.Event()
    batches: TickBatches[int, int] = TickBatches(runner)
    gone = asyncio.create_task(batches.submit(1))
    kept = asyncio.create_task(batches.submit(2))
    await runner.started.wait()
    gone.cancel()
    runner.gate.set()
    assert await kept == 20
    with pytest.raises(asyncio.CancelledError):
        await gone
    await batches.aclose()


async def test_a_lone_request_runs_inline_and_a_cancelled_first_caller_leaves_the_rest_theirs() -> (
    None
):
    runner = Runner()
    batches: TickBatches[int, int] = TickBatches(runner)
    assert await batches.submit(5) == 50  # alone: run inline

    first = asyncio.create_task(batches.submit(1))
    second = asyncio.create_task(batches.submit(2))
    await asyncio.sleep(0)  # one loop iteration (not a timer): both reached their await
    first.cancel()  # while the first caller yields to let others join
    assert await second == 20
    with pytest.raises(asyncio.CancelledError):
        await first
    assert runner.batches == [[5], [2]]  # the cancelled caller's read was dropped
