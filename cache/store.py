"""Redis commands of the cache tier: one method per round trip, no policy.

The store knows keys and scripts; it does not know about breakers, single-flight or
metrics (``context_cache`` composes those). Script replies come back as named outcomes
(``fill.LeaseAttempt``, ``fill.FillResult``), so no caller decodes Lua's numbers.
Every call is bounded by the Redis timeout as a whole (pool wait, connect, send and read
together), so no caller ever waits longer than ``redis_timeout_ms`` on a hung server.
redis-py closes a connection whose command was interrupted, so a timeout or a
cancellation never leaves an unread reply in the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from time import monotonic
from types import TracebackType
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from memlayer.cache import keys, metrics, scripts
from memlayer.cache.client import RedisClient
from memlayer.cache.codec import HEADER_LEN, SCHEMA
from memlayer.cache.epoch_record import EpochRecord
from memlayer.cache.errors import REDIS_TIMEOUTS, LoopStalled
from memlayer.cache.fill import (
    LEASE_ACQUIRED,
    LEASE_BUSY,
    FillResult,
    LeaseAttempt,
    LeaseRelease,
    LeaseState,
)

_NO_BYTES = b""
# The FILL script's lease reply: 1 held and released, 0 lost, -1 none held.
_LEASE_REPLIES = {1: LeaseRelease.RELEASED, 0: LeaseRelease.LOST, -1: LeaseRelease.NOT_HELD}


async def loop_stall(started: float, budget_s: float) -> float | None:
    """How late a timeout of a call started at ``started`` was, if our event loop rather
    than Redis is to blame for it; None if Redis is.

    The loop is to blame when the timer ran more than half the budget late (the loop was
    held: CPU-bound work), or when the loop is busy now: one turn of it takes more than a
    quarter of the budget. With many requests in flight a reply that arrived at once
    waits behind every other callback of a turn, its reader runs a turn later, and the
    timer, due meanwhile, cancels the call though the reply was there; the timer itself
    ran nearly on time. Only measured after a timeout: one turn of the loop.
    """
    loop = asyncio.get_running_loop()
    late = loop.time() - started - budget_s
    if late > budget_s / 2:
        return late
    turn_started = loop.time()
    await asyncio.sleep(0)
    if loop.time() - turn_started > budget_s / 4:
        return max(late, 0.0)
    return None


class Deadline:
    """``asyncio.timeout`` that tells a stalled or saturated event loop from a slow Redis.

    When the loop is to blame for the expiry (:func:`loop_stall`), it says nothing about
    Redis: the timeout is raised as :class:`LoopStalled` so the breaker can ignore it.
    """

    __slots__ = ("_budget", "_loop", "_start", "_timeout")

    def __init__(self, budget_s: float) -> None:
        self._budget = budget_s

    async def __aenter__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self._timeout = asyncio.timeout_at(self._start + self._budget)
        await self._timeout.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._timeout.__aexit__(exc_type, exc, tb)
        except TimeoutError as timeout:
            late = await loop_stall(self._start, self._budget)
            if late is not None:
                raise LoopStalled(late) from timeout
            raise


class ContextStore:
    """Typed access to one prefix's keys on one Redis (or cluster, or fakeredis)."""

    __slots__ = (
        "_acquire",
        "_client",
        "_fill",
        "_gate",
        "_invalidate",
        "_pipelines",
        "_prefix",
        "_raise_epoch",
        "_release",
        "_timeout",
    )

    def __init__(
        self, client: RedisClient, prefix: str, timeout_s: float, max_in_flight: int | None = None
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout_s
        # redis-py's cluster pool raises "Too many connections" instead of waiting; a
        # semaphore makes a burst queue (within the timeout) like the blocking pool does.
        self._gate = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._acquire = client.register_script(scripts.ACQUIRE)
        self._fill = client.register_script(scripts.FILL)
        self._invalidate = client.register_script(scripts.INVALIDATE)
        self._release = client.register_script(scripts.RELEASE)
        self._raise_epoch = client.register_script(scripts.RAISE_EPOCH)
        # A server (or fakeredis) pipelines scripts; a cluster's keys live on several
        # nodes, so batches go out as concurrent single calls instead.
        self._pipelines = isinstance(client, Redis)

    @property
    def client(self) -> RedisClient:
        """The client this store sends through (owned by the app's lifespan, not by us)."""
        return self._client

    @property
    def prefix(self) -> str:
        """The key prefix of every key this store touches (see ``keys``)."""
        return self._prefix

    async def _run(self, command: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Run one command, behind the gate when there is one (callers hold the timeout)."""
        if self._gate is None:
            return await command(*args, **kwargs)
        async with self._gate:
            return await command(*args, **kwargs)

    async def get(self, user_id: int, generation: int) -> bytes | None:
        """The raw cached value of a user (the hot path: one GET).

        Bounded by the client's own socket and pool timeouts (the same budget) rather
        than a :class:`Deadline`: one timer per hit less. A timeout our event loop is to
        blame for (:func:`loop_stall`: held, or saturated) is asked once more: the reply
        was most likely waiting, and a second GET costs far less than the Postgres query
        the load would fall back to. A second such timeout is raised as
        :class:`LoopStalled`; a timeout Redis is to blame for is raised as it is.
        """
        key = keys.context_key(self._prefix, user_id, generation)
        client, gate = self._client, self._gate
        for attempt in (1, 2):
            started = monotonic()
            try:
                # The client decodes nothing (decode_responses=False): values are bytes.
                if gate is None:
                    return await client.get(key)  # type: ignore[return-value]
                async with gate:
                    return await client.get(key)  # type: ignore[return-value]
            except REDIS_TIMEOUTS as timeout:
                late = await loop_stall(started, self._timeout)
                if late is None:
                    raise  # Redis, not our loop, was late: that says something about Redis
                if attempt == 2:
                    raise LoopStalled(late) from timeout
                metrics.LOOP_STALLS.inc()
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def acquire(
        self, user_id: int, generation: int, token: bytes, lease_ms: int, corrupt: bytes | None
    ) -> LeaseAttempt:
        """A complete value if one is there now, else whether we took the fill lease."""
        async with Deadline(self._timeout):
            result = await self._run(
                self._acquire,
                keys=(
                    keys.context_key(self._prefix, user_id, generation),
                    keys.lease_key(self._prefix, user_id, generation),
                ),
                args=(SCHEMA, token, lease_ms, corrupt or _NO_BYTES),
            )
        if isinstance(result, bytes):
            return LeaseAttempt(LeaseState.FILLED, result)
        acquired, floor = int(result[0]), int(result[1])
        if floor == 0:
            return LEASE_ACQUIRED if acquired == 1 else LEASE_BUSY
        return LeaseAttempt(LeaseState.ACQUIRED if acquired == 1 else LeaseState.BUSY, None, floor)

    async def fill(
        self,
        user_id: int,
        generation: int,
        value: bytes,
        ttl_ms: int,
        token: bytes | None,
        corrupt: bytes | None,
    ) -> FillResult:
        """Set-if-newer, releasing our lease (see ``scripts.FILL``)."""
        async with Deadline(self._timeout):
            stored, lease = await self._run(
                self._fill,
                keys=(
                    keys.context_key(self._prefix, user_id, generation),
                    keys.lease_key(self._prefix, user_id, generation),
                ),
                args=(SCHEMA, value, ttl_ms, token or _NO_BYTES, corrupt or _NO_BYTES),
            )
        return FillResult(stored == 1, _LEASE_REPLIES[lease])

    async def invalidate(
        self, user_id: int, generation: int, marker: bytes, ttl_ms: int, *, force: bool
    ) -> bool:
        """Install a versioned marker (see ``scripts.INVALIDATE``). True if written."""
        async with Deadline(self._timeout):
            written = await self._run(
                self._invalidate,
                keys=(
                    keys.context_key(self._prefix, user_id, generation),
                    keys.lease_key(self._prefix, user_id, generation),
                ),
                args=(SCHEMA, marker, ttl_ms, b"1" if force else b"0"),
            )
        return int(written) == 1

    async def release(self, user_id: int, generation: int, token: bytes) -> None:
        """Give up a lease we hold, by token, so waiters need not sit out its expiry."""
        async with Deadline(self._timeout):
            await self._run(
                self._release,
                keys=(keys.lease_key(self._prefix, user_id, generation),),
                args=(SCHEMA, token),
            )

    async def invalidate_many(
        self, entries: Sequence[tuple[int, bytes]], generation: int, ttl_ms: int
    ) -> None:
        """Install markers (``scripts.INVALIDATE``, not forced) for many users at once.

        Pipelined on one server; concurrent single calls on a cluster. Bounded by the
        Redis timeout scaled to the batch; raises Redis errors (some markers may be in).
        """
        if not entries:
            return
        budget = self._batch_budget(len(entries))
        if self._pipelines:
            async with Deadline(budget):
                pipe = self._client.pipeline(transaction=False)
                for user_id, marker in entries:
                    await self._invalidate(
                        keys=self._slot_keys(user_id, generation),
                        args=(SCHEMA, marker, ttl_ms, b"0"),
                        client=pipe,  # type: ignore[arg-type]  # a pipeline queues it
                    )
                await self._run(pipe.execute)
            return
        async with Deadline(budget):
            await asyncio.gather(
                *(
                    self._run(
                        self._invalidate,
                        keys=self._slot_keys(user_id, generation),
                        args=(SCHEMA, marker, ttl_ms, b"0"),
                    )
                    for user_id, marker in entries
                )
            )

    async def headers(self, user_ids: Sequence[int], generation: int) -> list[bytes | None]:
        """The version header of each user's value (GETRANGE: never the payload)."""
        names = [keys.context_key(self._prefix, u, generation) for u in user_ids]
        async with Deadline(self._batch_budget(len(names))):
            if self._pipelines:
                pipe = self._client.pipeline(transaction=False)
                for name in names:
                    pipe.getrange(name, 0, HEADER_LEN - 1)
                replies = await self._run(pipe.execute)
            else:
                replies = await asyncio.gather(
                    *(self._run(self._client.getrange, n, 0, HEADER_LEN - 1) for n in names)
                )
        # GETRANGE of a missing key is the empty string.
        return [bytes(r) if r else None for r in replies]

    def _batch_budget(self, n: int) -> float:
        """A batch gets the single-command timeout per hundred commands: a big drain round
        on a busy server must not look like an outage to the breaker."""
        return self._timeout * (1 + n / 100)

    def _slot_keys(self, user_id: int, generation: int) -> tuple[str, str]:
        return (
            keys.context_key(self._prefix, user_id, generation),
            keys.lease_key(self._prefix, user_id, generation),
        )

    # ------------------------------------------------------------------ epoch

    async def read_epoch(self) -> EpochRecord | None:
        """The epoch record alone (the write path's one GET)."""
        async with Deadline(self._timeout):
            raw = await self._run(self._client.get, keys.epoch_key(self._prefix))
        return EpochRecord.parse(raw)

    async def read_epoch_and_run_id(self) -> tuple[EpochRecord | None, str | None]:
        """The epoch record and the server's run id, in one round trip.

        The run id is None when the server does not tell it (INFO refused, as on
        fakeredis or a managed Redis that renames INFO): the caller stops asking.
        """
        async with Deadline(self._timeout):
            pipe = self._client.pipeline(transaction=False)
            pipe.get(keys.epoch_key(self._prefix))
            pipe.info("server")
            raw, info = await self._run(pipe.execute, raise_on_error=False)
        if isinstance(raw, Exception):
            raise raw
        if isinstance(info, ResponseError):
            return EpochRecord.parse(raw), None
        if isinstance(info, Exception):
            raise info
        run_id = info.get("run_id") if isinstance(info, dict) else None
        return EpochRecord.parse(raw), str(run_id) if run_id else None

    def on_new_connection(self, handshake: Callable[[Any], Awaitable[None]]) -> None:
        """Run ``handshake(connection)`` as every new connection's handshake (it must
        do redis-py's own ``on_connect``). Single-server clients only: a cluster client
        has a pool per node, and its epoch check goes without run ids anyway."""
        if isinstance(self._client, Redis):
            self._client.connection_pool.connection_kwargs["redis_connect_func"] = handshake

    async def read_legacy_generation(self) -> int:
        """The pre-epoch generation counter (0 when absent or unreadable)."""
        async with Deadline(self._timeout):
            raw = await self._run(self._client.get, keys.legacy_generation_key(self._prefix))
        return int(raw) if isinstance(raw, bytes) and raw.isdigit() else 0

    async def raise_epoch(self, generation: int, run_id: str) -> EpochRecord:
        """Install ``generation`` unless a higher one is there; returns the record now."""
        async with Deadline(self._timeout):
            raw = await self._run(
                self._raise_epoch,
                keys=(keys.epoch_key(self._prefix),),
                args=(generation, run_id),
            )
        record = EpochRecord.parse(raw)
        if record is None:  # pragma: no cover - the script always returns a record
            raise ResponseError("the epoch script returned no record")
        return record

    async def ping(self) -> bool:
        async with Deadline(self._timeout):
            return bool(await self._run(self._client.ping))

    def iter_keys(self, count: int = 1000) -> AsyncIterator[bytes]:
        """Every key of this prefix, by SCAN (never KEYS); for stats, not the hot path."""
        return self._client.scan_iter(match=keys.scan_pattern(self._prefix), count=count)

    async def memory_usage(self, key: bytes) -> int | None:
        async with Deadline(self._timeout):
            usage: int | None = await self._run(self._client.memory_usage, key)
        return usage
