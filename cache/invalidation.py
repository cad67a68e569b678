"""The invalidation link: Redis tells this process about every change under our prefix.

Redis client-side caching in broadcast mode, on one dedicated RESP2 connection::

    CLIENT ID                                   -> <id>
    CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX <prefix>:v1:{u: PREFIX <prefix>:v1:probe:
                                         PREFIX <prefix>:v1:epoch PREFIX <prefix>:v1:{n:
    SUBSCRIBE __redis__:invalidate

(per-user keys: memory contexts; per-namespace keys: the LangGraph store's namespaces).
From then on Redis publishes the name of every key under those prefixes that changes —
by any client, any script, expiry, eviction — and a nil list for FLUSHALL/FLUSHDB.
Tracking and subscription live on the same connection, so they are lost together: the
link is either established (every change reaches us) or lost, never half.

Why tracking rather than a channel each write script publishes to: it covers every way
a key can change (expiry and maxmemory eviction, an operator's DEL, FLUSHALL, a restore)
without any write path having to remember to publish, and measured the same lag
(``memlayer bench-invalidation``). RESP2 because redis-py's asyncio client has no handler
for RESP3 invalidation pushes; the RESP2 form is a plain pub/sub message.

Loss is announced *synchronously*, before anything is awaited, so subscribers stop
serving at once: on a read error (connection reset, CLIENT KILL, Redis restart), on an
unanswered liveness PING (a partition that sends nothing), or on close. The link then
reconnects with capped, jittered exponential back-off and announces "established" only
once the SUBSCRIBE is confirmed. redis-py's own retries are disabled: they would reconnect
the socket silently — without tracking — and the link would look alive while deaf.

Not available on Redis Cluster (tracking is per node; one link per primary, following
resharding and failover, is not built) nor on the embedded fakeredis (no CLIENT
TRACKING): :func:`near_availability` says which, and the near-cache stays off there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Protocol

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from memlayer.cache import near_metrics as metrics
from memlayer.cache.errors import REDIS_ERRORS, CacheError
from memlayer.cache.keys import EntityKey, EpochKey, KeyParser, ProbeKey, tracked_prefixes
from memlayer.settings import Settings

log = logging.getLogger("memlayer.cache")

INVALIDATE_CHANNEL = b"__redis__:invalidate"


class LinkDown(CacheError):
    """The invalidation link is not established (a barrier cannot be had)."""


class _Unresponsive(CacheError):
    """A liveness PING went unanswered: the connection is presumed dead."""


# What ends one establishment of the link (and is followed by a reconnect).
_LINK_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, CacheError)


class LinkSubscriber(Protocol):
    """Told of every change of the link, synchronously and in order (must not await)."""

    def link_established(self) -> None: ...

    def link_lost(self) -> None: ...

    def flushed(self) -> None: ...

    def invalidated(self, keys: Sequence[EntityKey]) -> None: ...

    def epoch_changed(self) -> None:
        """The epoch record changed: some process turned the cache over."""
        ...


class ProbeObserver(Protocol):
    """Receives lag probes (``cache.lag_probe``)."""

    def link_established(self) -> None: ...

    def probe_seen(self, probe: ProbeKey) -> None: ...


# ------------------------------------------------------------------- availability


class NearAvailability(StrEnum):
    AVAILABLE = "available"
    DISABLED = "disabled"  # MEMLAYER_NEAR_CACHE_ENABLED=false
    CACHE_DISABLED = "cache_disabled"  # no Redis tier at all
    EMBEDDED = "embedded"  # in-process fakeredis: no CLIENT TRACKING
    CLUSTER = "cluster"  # tracking is per node: not built


_WHY_OFF = {
    NearAvailability.DISABLED: "MEMLAYER_NEAR_CACHE_ENABLED is false",
    NearAvailability.CACHE_DISABLED: "the Redis cache tier is off",
    NearAvailability.EMBEDDED: "embedded mode: the in-process Redis has no client tracking "
    "(its reads are in-process already)",
    NearAvailability.CLUSTER: "Redis Cluster: per-node client tracking is not supported yet",
}


def near_availability(settings: Settings) -> NearAvailability:
    """Whether this configuration can run a near-cache (and if not, why)."""
    if not settings.cache_enabled:
        return NearAvailability.CACHE_DISABLED
    if not settings.near_cache_enabled:
        return NearAvailability.DISABLED
    url = settings.redis_url
    if url is None:
        return NearAvailability.EMBEDDED
    if url.partition("://")[0].endswith("+cluster"):
        return NearAvailability.CLUSTER
    return NearAvailability.AVAILABLE


def log_availability(availability: NearAvailability) -> None:
    """One line at start-up saying whether hits can skip Redis, and why not."""
    if availability is NearAvailability.AVAILABLE:
        log.info("cache: near-cache on (invalidated by Redis client tracking)")
    else:
        log.info("cache: near-cache off: %s", _WHY_OFF[availability])


# --------------------------------------------------------------------------- link


class InvalidationLink:
    """One tracking connection, its listener task, and the subscribers it tells."""

    def __init__(
        self,
        connect: Callable[[], Redis],
        prefix: str,
        *,
        check_interval_s: float,
        check_timeout_s: float,
        backoff_initial_s: float,
        backoff_max_s: float,
        probes: ProbeObserver | None = None,
    ) -> None:
        """``connect``: a new client of one connection for each establishment (``for_url``);
        the link closes each one when that establishment ends."""
        self._connect = connect
        self._prefixes = tracked_prefixes(prefix)
        self._parser = KeyParser(prefix)
        self._interval = check_interval_s
        self._timeout = check_timeout_s
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._probes = probes
        self._subscribers: list[LinkSubscriber] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._pubsub: PubSub | None = None
        self._established = asyncio.Event()
        self._client_id: int | None = None
        # Sent PINGs in order: a barrier's future, or None for a liveness check.
        self._pings: deque[tuple[float, asyncio.Future[None] | None]] = deque()

    @classmethod
    def for_url(cls, url: str, prefix: str, settings: Settings, **kwargs: Any) -> InvalidationLink:
        """A link on connections of its own to the Redis at ``url`` (never the app's pool:
        a tracking connection must not be handed to another caller)."""

        def connect() -> Redis:
            pool = ConnectionPool.from_url(
                url,
                max_connections=1,
                protocol=2,
                decode_responses=False,
                socket_connect_timeout=settings.redis_connect_timeout_ms / 1000,
                socket_timeout=settings.near_cache_link_timeout_ms / 1000,
                health_check_interval=0,
                # No retries, and no error is "retryable": redis-py's retry path
                # reconnects the socket before re-raising, which would leave a
                # subscribed connection without tracking.
                retry=Retry(NoBackoff(), 0, supported_errors=()),
            )
            return Redis(connection_pool=pool)

        defaults: dict[str, Any] = {
            "check_interval_s": settings.near_cache_link_check_ms / 1000,
            "check_timeout_s": settings.near_cache_link_timeout_ms / 1000,
            "backoff_initial_s": settings.near_cache_reconnect_initial_ms / 1000,
            "backoff_max_s": settings.near_cache_reconnect_max_ms / 1000,
        }
        return cls(connect, prefix, **(defaults | kwargs))

    # ------------------------------------------------------------- lifecycle

    def subscribe(self, subscriber: LinkSubscriber) -> None:
        self._subscribers.append(subscriber)

    def start(self) -> None:
        """Run the link in the background: connect, listen, reconnect after a loss."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="memlayer-invalidation-link")
            self._task.add_done_callback(_log_crash)

    async def aclose(self) -> None:
        """Stop listening and close the link's connection; subscribers hear "lost" first."""
        self._closing = True  # ends the loop even where a library swallows the cancel
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def established(self) -> bool:
        return self._established.is_set()

    @property
    def client_id(self) -> int | None:
        """The Redis client id of the tracking connection while established (ops, tests)."""
        return self._client_id if self.established else None

    async def wait_established(self) -> None:
        """Until the link is (re-)established; callers bound it with a timeout."""
        await self._established.wait()

    async def barrier(self) -> None:
        """Return once every invalidation Redis queued before this call has been handled.

        A PING on the link connection: Redis answers it after everything it queued to
        the connection earlier, so when the PONG is read, those invalidations have been
        delivered. Raises :class:`LinkDown` if the link is or goes down meanwhile, and
        ``TimeoutError`` past the link timeout.
        """
        pubsub = self._pubsub
        if pubsub is None or not self.established:
            raise LinkDown("the invalidation link is not established")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pings.append((loop.time(), done))
        try:
            await pubsub.ping()
        except REDIS_ERRORS as exc:
            raise LinkDown(f"the invalidation link failed: {exc}") from exc
        async with asyncio.timeout(self._timeout):
            await done

    # -------------------------------------------------------------- the loop

    async def _run(self) -> None:
        attempt = 0
        try:
            while not self._closing:
                client = self._connect()
                pubsub = client.pubsub()
                try:
                    await self._establish(pubsub)
                    attempt = 0
                    await self._listen(pubsub)
                except _LINK_ERRORS as exc:
                    self._lose(f"{type(exc).__name__}: {exc}")
                finally:
                    self._lose("closed")
                    self._pubsub = None
                    await self._close_quietly(pubsub, client)
                if self._closing:
                    return
                attempt += 1
                ceiling = min(self._backoff_max, self._backoff_initial * 2 ** min(attempt, 30))
                await asyncio.sleep(random.uniform(ceiling / 2, ceiling))
        finally:
            self._lose("closed")

    async def _establish(self, pubsub: PubSub) -> None:
        async with asyncio.timeout(self._timeout * 4):
            await pubsub.connect()  # type: ignore[no-untyped-call]
            conn = pubsub.connection
            assert conn is not None  # connect() sets it
            await conn.send_command("CLIENT", "ID")
            client_id = int(await conn.read_response())
            prefixes: list[str] = []
            for prefix in self._prefixes:
                prefixes += ["PREFIX", prefix]
            await conn.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", *prefixes
            )
            reply = await conn.read_response()
            if reply != b"OK":
                raise CacheError(f"CLIENT TRACKING answered {reply!r}")
            await pubsub.subscribe(INVALIDATE_CHANNEL)
            while True:
                message = await pubsub.get_message(timeout=self._timeout)
                if message is None:
                    raise _Unresponsive("SUBSCRIBE was not confirmed")
                if message["type"] == "subscribe":
                    break
        self._pubsub = pubsub
        self._client_id = client_id
        self._pings.clear()
        self._established.set()
        metrics.LINKS_UP.set(1)
        metrics.LINK_ESTABLISHED.inc()
        log.info("cache: invalidation link established (client id %s)", client_id)
        for subscriber in self._subscribers:
            subscriber.link_established()
        if self._probes is not None:
            self._probes.link_established()

    async def _listen(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        pings = self._pings
        while not self._closing:
            if pings:
                wait = max(0.0, pings[0][0] + self._timeout - loop.time())
            else:
                wait = self._interval
            message = await pubsub.get_message(timeout=wait)
            if message is None:
                if pings:
                    if loop.time() >= pings[0][0] + self._timeout:
                        raise _Unresponsive("a PING went unanswered")
                else:  # idle: make sure the connection still carries anything
                    pings.append((loop.time(), None))
                    await pubsub.ping()
                continue
            kind = message["type"]
            if kind == "message" and message["channel"] == INVALIDATE_CHANNEL:
                self._deliver(message["data"])
            elif kind == "pong" and pings:
                _, done = pings.popleft()
                if done is not None and not done.done():
                    done.set_result(None)

    def _deliver(self, names: list[bytes] | None) -> None:
        if names is None:  # FLUSHALL / FLUSHDB
            metrics.KEYS_FLUSH.inc()
            for subscriber in self._subscribers:
                subscriber.flushed()
            return
        parse = self._parser.parse
        entities: list[EntityKey] = []
        epoch = False
        for name in names:
            key = parse(name)
            if type(key) is EntityKey:
                entities.append(key)
            elif type(key) is ProbeKey:
                metrics.KEYS_PROBE.inc()
                if self._probes is not None:
                    self._probes.probe_seen(key)
            elif type(key) is EpochKey:
                metrics.KEYS_EPOCH.inc()
                epoch = True
            else:
                metrics.KEYS_OTHER.inc()
        if epoch:
            for subscriber in self._subscribers:
                subscriber.epoch_changed()
        if entities:
            metrics.KEYS_ENTITY.inc(len(entities))
            for subscriber in self._subscribers:
                subscriber.invalidated(entities)

    def _lose(self, why: str) -> None:
        """Announce the loss (once per establishment) before anything is awaited."""
        if not self._established.is_set():
            return
        self._established.clear()
        metrics.LINKS_UP.set(0)
        metrics.LINK_LOST.inc()
        if why != "closed":
            log.warning("cache: invalidation link lost (%s); near-cache dropped", why)
        for subscriber in self._subscribers:
            subscriber.link_lost()
        while self._pings:
            _, done = self._pings.popleft()
            if done is not None and not done.done():
                done.set_exception(LinkDown(f"the invalidation link was lost ({why})"))
                done.exception()  # retrieved: its barrier may have given up already

    @staticmethod
    async def _close_quietly(pubsub: PubSub, client: Redis) -> None:
        """Close this establishment's connection (bounded: nothing here may hang a close)."""
        with contextlib.suppress(*REDIS_ERRORS):
            async with asyncio.timeout(1.0):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()


def _log_crash(task: asyncio.Task[None]) -> None:
    """A bug that ends the link leaves subscribers told "lost" (safe), and says so here."""
    if not task.cancelled() and task.exception() is not None:
        log.error("cache: the invalidation link stopped", exc_info=task.exception())
