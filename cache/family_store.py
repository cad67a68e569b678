"""Redis round trips of the fill protocol for any key family, single or batched.

``store.ContextStore`` speaks for the memory contexts (keys built from a user id); this
speaks for a family whose keys come from a ``value_key``/``lease_key`` pair of
``cache.keys`` builders (the LangGraph store's namespaces: ``keys.namespace_key``). The
scripts, the header they compare and the outcomes they return are the same ones
(``scripts``, ``codec``, ``fill``): one protocol. Batches go out as ONE pipeline on a
server (MGET for reads) and as concurrent single calls on a cluster, whose keys live
on several nodes. No policy here: breakers, single-flight and metrics are the caller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from time import monotonic
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis

from memlayer.cache import scripts
from memlayer.cache.client import RedisClient
from memlayer.cache.codec import SCHEMA
from memlayer.cache.errors import REDIS_TIMEOUTS, LoopStalled
from memlayer.cache.fill import FillResult, LeaseAttempt, fill_result, lease_attempt
from memlayer.cache.store import Deadline, loop_stall

K = TypeVar("K")

KeyOf = Callable[[K, int], str]  # (entity, generation) -> key name

_NO_BYTES = b""


class FamilyStore(Generic[K]):
    """Typed access to one key family's values and leases on one Redis (or cluster)."""

    __slots__ = (
        "_acquire",
        "_client",
        "_fill",
        "_gate",
        "_invalidate",
        "_lease_key",
        "_pipelines",
        "_release",
        "_timeout",
        "_value_key",
    )

    def __init__(
        self,
        client: RedisClient,
        timeout_s: float,
        value_key: KeyOf[K],
        lease_key: KeyOf[K],
        max_in_flight: int | None = None,
    ) -> None:
        self._client = client
        self._timeout = timeout_s
        self._value_key = value_key
        self._lease_key = lease_key
        self._gate = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._acquire = client.register_script(scripts.ACQUIRE)
        self._fill = client.register_script(scripts.FILL)
        self._invalidate = client.register_script(scripts.INVALIDATE)
        self._release = client.register_script(scripts.RELEASE)
        self._pipelines = isinstance(client, Redis)

    @property
    def client(self) -> RedisClient:
        return self._client

    def value_key(self, key: K, generation: int) -> str:
        return self._value_key(key, generation)

    async def _run(self, command: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        if self._gate is None:
            return await command(*args, **kwargs)
        async with self._gate:
            return await command(*args, **kwargs)

    def _slot(self, key: K, generation: int) -> tuple[str, str]:
        return self._value_key(key, generation), self._lease_key(key, generation)

    def _budget(self, n: int) -> float:
        """The single-command timeout per hundred commands (``ContextStore``'s rule)."""
        return self._timeout * (1 + n / 100)

    # ------------------------------------------------------------------ reads

    async def get(self, key: K, generation: int) -> bytes | None:
        [raw] = await self.get_many([key], generation)
        return raw

    async def get_many(self, keys: Sequence[K], generation: int) -> list[bytes | None]:
        """The raw values of ``keys`` in one round trip (MGET; per slot on a cluster).

        Bounded by the client's socket and pool timeouts, like ``ContextStore.get``; a
        timeout that fired far past due is told apart as :class:`LoopStalled`.
        """
        names = [self._value_key(key, generation) for key in keys]
        started = monotonic()
        try:
            if self._pipelines:
                replies = await self._run(self._client.mget, names)
            else:
                replies = await self._run(self._client.mget_nonatomic, names)  # type: ignore[union-attr]
        except REDIS_TIMEOUTS as timeout:
            late = await loop_stall(started, self._timeout * (1 + len(names) / 100))
            if late is not None:
                raise LoopStalled(late) from timeout
            raise
        return list(replies)

    # ----------------------------------------------------------------- leases

    async def acquire(
        self, key: K, generation: int, token: bytes, lease_ms: int, corrupt: bytes | None
    ) -> LeaseAttempt:
        [attempt] = await self.acquire_many([key], generation, [token], lease_ms, [corrupt])
        return attempt

    async def acquire_many(
        self,
        keys: Sequence[K],
        generation: int,
        tokens: Sequence[bytes],
        lease_ms: int,
        corrupt: Sequence[bytes | None],
    ) -> list[LeaseAttempt]:
        """``scripts.ACQUIRE`` for each key, in one pipeline."""
        calls = [
            (self._slot(key, generation), (SCHEMA, token, lease_ms, bad or _NO_BYTES))
            for key, token, bad in zip(keys, tokens, corrupt, strict=True)
        ]
        replies = await self._scripts(self._acquire, calls)
        return [lease_attempt(reply) for reply in replies]

    async def release(self, key: K, generation: int, token: bytes) -> None:
        """Give up a lease we hold, by token (the loader failed or was cancelled)."""
        async with Deadline(self._timeout):
            await self._run(
                self._release, keys=(self._lease_key(key, generation),), args=(SCHEMA, token)
            )

    # --------------------------------------------------------------- installs

    async def fill(
        self,
        key: K,
        generation: int,
        value: bytes,
        ttl_ms: int,
        token: bytes | None,
        corrupt: bytes | None,
    ) -> FillResult:
        [result] = await self.fill_many([(key, value, token, corrupt)], generation, ttl_ms)
        return result

    async def fill_many(
        self,
        installs: Sequence[tuple[K, bytes, bytes | None, bytes | None]],
        generation: int,
        ttl_ms: int,
    ) -> list[FillResult]:
        """Set-if-newer (``scripts.FILL``) for each install, in one pipeline."""
        calls = [
            (
                self._slot(key, generation),
                (SCHEMA, value, ttl_ms, token or _NO_BYTES, bad or _NO_BYTES),
            )
            for key, value, token, bad in installs
        ]
        replies = await self._scripts(self._fill, calls)
        return [fill_result(reply) for reply in replies]

    async def invalidate_many(
        self,
        entries: Sequence[tuple[K, bytes]],
        generation: int,
        ttl_ms: int,
        *,
        force: bool = False,
    ) -> list[bool]:
        """Versioned markers (``scripts.INVALIDATE``), in one pipeline; True if written.

        Not forced, a complete value at or above a marker's version stays.
        """
        flag = b"1" if force else b"0"
        calls = [
            (self._slot(key, generation), (SCHEMA, marker, ttl_ms, flag)) for key, marker in entries
        ]
        replies = await self._scripts(self._invalidate, calls)
        return [int(reply) == 1 for reply in replies]

    async def _scripts(
        self, script: Any, calls: Sequence[tuple[tuple[str, str], tuple[Any, ...]]]
    ) -> list[Any]:
        """Run one script per call: one pipeline on a server, concurrent calls on a cluster.
        Bounded by the Redis timeout scaled to the batch; raises Redis errors."""
        if not calls:
            return []
        async with Deadline(self._budget(len(calls))):
            if self._pipelines:
                pipe = self._client.pipeline(transaction=False)
                for keys, args in calls:
                    await script(keys=keys, args=args, client=pipe)  # a pipeline queues it
                return list(await self._run(pipe.execute))
            return list(
                await asyncio.gather(
                    *(self._run(script, keys=keys, args=args) for keys, args in calls)
                )
            )
