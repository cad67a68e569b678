"""Once this process acknowledged a write, no later load joins a read or load from before it.

Case 6 of issue 12: with the breaker open, a load that starts after an acknowledged write
could join an older in-flight database load and return the pre-write context. The same
holds for a shared GET issued before the write-through landed. Races are staged with
events: the older load is held inside its loader (or its GET) while the write happens.
"""

from __future__ import annotations

import asyncio

import fakeredis

from memlayer.cache import ContextCache
from memlayer.cache.shared_read import SharedReads
from memlayer.cache.singleflight import SingleFlight
from memlayer.records import LoadSource, MemoryContext, ReadFloor
from memlayer.settings import Settings
from tests.support.contexts import make_context


class HeldLoader:
    """A database that answers ``context``; the first call waits until released."""

    def __init__(self, context: MemoryContext) -> None:
        self.context = context
        self.calls = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, floor: ReadFloor) -> MemoryContext:
        self.calls += 1
        context = self.context  # what the database holds when the read begins
        if self.calls == 1:
            self.entered.set()
            await self.release.wait()
        return context


async def test_breaker_open_a_load_after_an_acknowledged_write_never_joins_the_older_load() -> None:
    server = fakeredis.FakeServer()
    cache = ContextCache(
        fakeredis.FakeAsyncRedis(server=server),
        Settings(
            cache_key_prefix="unit-nojoin",
            breaker_failure_threshold=1,
            breaker_cooldown_seconds=3600.0,
        ),
    )
    await cache.write_through(make_context(1, 1))
    server.connected = False  # Redis goes away: the next load opens the breaker
    opener = HeldLoader(make_context(99, 0))
    opener.calls = 1  # do not hold this one
    await cache.load(99, opener)
    assert cache.breaker_open

    database = HeldLoader(make_context(1, 1))
    older = asyncio.create_task(cache.load(1, database))
    await database.entered.wait()  # a load began at version 1 and is still reading
    database.context = make_context(1, 2)  # the write commits ...
    await cache.write_through(make_context(1, 2))  # ... and is acknowledged (deferred)

    newer = await cache.load(1, database)

    assert newer.source is LoadSource.DATABASE and newer.context.version == 2
    assert database.calls == 2, "the later load read for itself"
    database.release.set()
    assert (await older).context.version == 1, "the older caller still gets its own read"
    await cache.aclose()


async def test_a_shared_get_issued_before_a_write_is_not_joined_after_it() -> None:
    gate = asyncio.Event()
    started = asyncio.Event()
    values = {"now": b"old"}
    gets = 0

    async def get(key: int, generation: int) -> bytes | None:
        nonlocal gets
        gets += 1
        seen = values["now"]  # Redis answers with what it holds when the GET arrives
        if gets == 1:
            started.set()
            await gate.wait()
        return seen

    reads: SharedReads[int] = SharedReads(get)
    leader = asyncio.create_task(reads.read(1, 0))
    await started.wait()
    early_joiner = asyncio.create_task(reads.read(1, 0))
    await asyncio.sleep(0)  # joins the leader's GET
    values["now"] = b"new"  # the write-through lands ...
    reads.forget(1)  # ... and the write is acknowledged

    late = await reads.read(1, 0)

    assert late == b"new" and gets == 2
    gate.set()
    assert await leader == b"old" and await early_joiner == b"old"
    assert await reads.read(1, 0) == b"new", "no retired read lingers"


async def test_a_retired_read_never_settles_the_read_that_replaced_it() -> None:
    gates = [asyncio.Event(), asyncio.Event()]
    answers = [b"first", b"second"]
    calls = 0

    async def get(key: int, generation: int) -> bytes | None:
        nonlocal calls
        index = calls
        calls += 1
        await gates[index].wait()
        return answers[index]

    reads: SharedReads[int] = SharedReads(get)
    first = asyncio.create_task(reads.read(1, 0))
    await asyncio.sleep(0)
    reads.forget(1)
    second = asyncio.create_task(reads.read(1, 0))
    await asyncio.sleep(0)
    joiner = asyncio.create_task(reads.read(1, 0))  # joins the second read
    await asyncio.sleep(0)

    gates[0].set()  # the retired read finishes first
    assert await first == b"first"
    assert not joiner.done(), "the retired read must not answer the second read's joiners"
    gates[1].set()
    assert await second == b"second" and await joiner == b"second"


async def test_single_flight_forget_starts_fresh_work_and_old_waiters_keep_theirs() -> None:
    flights: SingleFlight[str] = SingleFlight()
    release = asyncio.Event()

    async def old() -> str:
        await release.wait()
        return "old"

    async def new() -> str:
        return "new"

    waiting = asyncio.create_task(flights.do(1, old))
    await asyncio.sleep(0)
    flights.forget(1)
    assert await flights.do(1, new) == "new"
    release.set()
    assert await waiting == "old"
    assert len(flights) == 0


async def test_single_flight_never_joins_work_older_than_its_age_limit() -> None:
    flights: SingleFlight[int] = SingleFlight(max_age_s=0.0)
    release = asyncio.Event()
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        await release.wait()
        return runs

    first = asyncio.create_task(flights.do(1, work))
    await asyncio.sleep(0)
    second = asyncio.create_task(flights.do(1, work))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, second)
    assert runs == 2
