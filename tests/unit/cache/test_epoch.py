"""Redis that lost data is noticed and the cache turns over; the generation never goes back.

The judgement is a pure function (the specification below); the rest runs a real
ContextCache on fakeredis, whose server refuses INFO, so the epoch record alone speaks
(as on a cluster). Run ids are proved against real redis-servers in
tests/integration/coherence/test_redis_data_loss.py.
"""

from __future__ import annotations

import fakeredis
import pytest

from memlayer.cache import ContextCache, FloorUnavailable
from memlayer.cache.epoch import InMemoryFloor, TurnoverReason, judge
from memlayer.cache.epoch_record import EpochRecord
from memlayer.cache.keys import epoch_key
from memlayer.cache.state import DROP_EVENTS, TierEvent
from memlayer.records import LoadSource, MemoryContext
from memlayer.settings import Settings
from tests.support.contexts import CountingLoader, make_context

PREFIX = "unit-epoch"


# --- the judgement --------------------------------------------------------------------


def test_a_missing_record_means_redis_lost_it() -> None:
    assert judge(None, "run-a", known=3, floor=3).turnover is TurnoverReason.EPOCH_MISSING


def test_another_run_id_means_a_restart_restore_or_failover() -> None:
    record = EpochRecord(5, "run-a")
    assert judge(record, "run-b", known=5, floor=5).turnover is TurnoverReason.RUN_CHANGED


def test_a_generation_below_what_this_process_or_postgres_knows_is_never_adopted() -> None:
    record = EpochRecord(4, "run-a")
    behind = TurnoverReason.GENERATION_BEHIND
    assert judge(record, "run-a", known=5, floor=0).turnover is behind
    assert judge(record, "run-a", known=0, floor=5).turnover is behind


def test_a_sound_record_is_adopted_even_when_higher() -> None:
    assert judge(EpochRecord(7, "run-a"), "run-a", known=5, floor=6).generation == 7


def test_without_a_run_id_only_the_generation_speaks() -> None:
    verdict = judge(EpochRecord(5, "run-a"), None, known=5, floor=5)
    assert verdict.turnover is None and verdict.generation == 5


def test_the_record_survives_its_own_encoding() -> None:
    record = EpochRecord(12, "abc123")
    assert EpochRecord.parse(record.encode().encode()) == record
    assert EpochRecord.parse(b"garbage") is None
    assert EpochRecord.parse(None) is None


# --- a cache on fakeredis -------------------------------------------------------------


class BrokenFloor(InMemoryFloor):
    """A floor whose store is down until ``healthy`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.healthy = True

    async def raise_to(self, generation: int) -> int:
        if not self.healthy:
            raise FloorUnavailable("postgres is down (test)")
        return await super().raise_to(generation)


def make_cache(server: fakeredis.FakeServer, floor: InMemoryFloor | None = None) -> ContextCache:
    settings = Settings(cache_key_prefix=PREFIX, cache_epoch_check_ms=3_600_000)
    return ContextCache(fakeredis.FakeAsyncRedis(server=server), settings, floor=floor)


async def warm(cache: ContextCache, user_id: int, version: int) -> None:
    await cache.write_through(make_context(user_id, version))
    hit = await cache.load(user_id, CountingLoader(make_context(user_id, 0)))
    assert hit.source is LoadSource.CACHE and hit.context.version == version


async def test_a_flushed_redis_turns_the_cache_over_and_old_values_are_never_served() -> None:
    server = fakeredis.FakeServer()
    cache = make_cache(server)
    await warm(cache, 1, 3)
    before = cache.known_generation
    client = fakeredis.FakeAsyncRedis(server=server)
    # Redis comes back from a snapshot taken before the epoch record existed: old value
    # at the old key, no record.
    await client.delete(epoch_key(PREFIX))

    await cache.check_epoch()

    assert cache.generation == before + 1
    loader = CountingLoader(make_context(1, 4))
    result = await cache.load(1, loader)
    assert result.source is LoadSource.DATABASE and result.context.version == 4
    await cache.aclose()


async def test_a_lower_generation_read_from_redis_is_never_adopted() -> None:
    server = fakeredis.FakeServer()
    cache = make_cache(server)
    await warm(cache, 1, 1)
    await cache.turn_over()  # generation 2 now
    known = cache.known_generation
    client = fakeredis.FakeAsyncRedis(server=server)
    await client.set(epoch_key(PREFIX), EpochRecord(known - 1, "").encode())

    await cache.check_epoch()

    assert cache.generation == known + 1, "turned over above it, not back to it"
    record = EpochRecord.parse(await client.get(epoch_key(PREFIX)))
    assert record is not None and record.generation == known + 1
    await cache.aclose()


async def test_another_process_s_turnover_is_adopted_at_the_next_check() -> None:
    server = fakeredis.FakeServer()
    first, second = make_cache(server), make_cache(server)
    await warm(first, 1, 1)
    await warm(second, 1, 1)
    await first.turn_over()

    await second.check_epoch()

    assert second.generation == first.generation
    await first.aclose()
    await second.aclose()


async def test_a_turnover_that_cannot_be_persisted_stops_reads_from_redis_until_it_can() -> None:
    server = fakeredis.FakeServer()
    floor = BrokenFloor()
    cache = make_cache(server, floor)
    await warm(cache, 1, 1)
    known = cache.known_generation
    await fakeredis.FakeAsyncRedis(server=server).flushall()
    floor.healthy = False

    await cache.check_epoch()

    assert cache.generation is None and cache.known_generation == known
    loader = CountingLoader(make_context(1, 2))
    assert (await cache.load(1, loader)).source is LoadSource.DATABASE
    floor.healthy = True
    await cache.check_epoch()
    assert cache.generation == known + 1
    await cache.aclose()


async def test_postgres_floor_above_redis_record_turns_a_new_process_over_above_both() -> None:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeAsyncRedis(server=server)
    await client.set(epoch_key(PREFIX), EpochRecord(3, "").encode())
    floor = InMemoryFloor()
    await floor.raise_to(9)  # generations up to 9 were used before Redis was restored

    cache = make_cache(server, floor)
    await cache.load(1, CountingLoader(make_context(1, 1)))

    assert cache.generation == 10
    assert await floor.read() == 10, "persisted before it was installed"
    await cache.aclose()


async def test_subscribers_are_told_to_drop_what_they_hold_on_a_turnover() -> None:
    server = fakeredis.FakeServer()
    cache = make_cache(server)
    await warm(cache, 1, 1)
    seen: list[TierEvent] = []
    cache.subscribe(seen.append)

    await cache.turn_over()

    assert seen and all(event in DROP_EVENTS for event in seen)
    await cache.aclose()


@pytest.mark.parametrize("lost", ["flushall", "epoch_deleted"])
async def test_a_write_that_finds_the_record_gone_is_deferred_not_written_into_the_void(
    lost: str,
) -> None:
    server = fakeredis.FakeServer()
    cache = make_cache(server)
    await warm(cache, 1, 1)
    client = fakeredis.FakeAsyncRedis(server=server)
    if lost == "flushall":
        await client.flushall()
    else:
        await client.delete(epoch_key(PREFIX))

    outcome = await cache.write_through(make_context(1, 2))

    assert not outcome.redis_holds_it, "the writer keeps its outbox row"
    loader = CountingLoader(make_context(1, 2))
    result = await cache.load(1, loader)
    assert result.context.version == 2 and loader.floors[-1].primary
    await cache.aclose()


def test_only_generation_and_breaker_events_drop_state() -> None:
    assert {TierEvent.GENERATION_CHANGED, TierEvent.BREAKER_OPENED} == DROP_EVENTS
    assert MemoryContext.empty(1).version == 0


async def test_an_upgrade_never_reuses_a_generation_of_the_previous_key_scheme() -> None:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeAsyncRedis(server=server)
    await client.set(f"{PREFIX}:v1:generation", b"3")  # the old counter: g1..g3 were used

    cache = make_cache(server)
    await cache.load(1, CountingLoader(make_context(1, 1)))

    assert cache.generation == 4
    await cache.aclose()
