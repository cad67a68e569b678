"""Every new connection to Redis proves it reaches the server the epoch was verified on.

The epoch watch (``epoch``) notices a Redis that lost data within one check interval.
That interval used to be a window: after a restart from an older snapshot or a failover,
a load could open a fresh connection to the new server and serve what it restored before
the next check. But every command after a restart or a failover runs on a NEW connection
(the old ones died with the server), so checking the server's run id when a connection is
made closes the window: a connection to a server other than the verified one fails its
first command, the process stops trusting Redis at once (``TierState.distrust``), and the
next load runs the epoch check, which turns the cache over.

The cost is one ``INFO server`` per new connection (pool connections live long). Nothing
is checked while no run id has been verified (first start, cluster, a server without
INFO), while the process already distrusts Redis, or inside the epoch check itself (it
judges the run id on its own): see :func:`verifying_epoch`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from memlayer.cache.state import TierState

_VERIFYING = contextvars.ContextVar("memlayer_verifying_epoch", default=False)


class ServerChanged(RedisConnectionError):
    """A new connection reached a Redis other than the one the epoch was verified on."""


@contextmanager
def verifying_epoch() -> Iterator[None]:
    """Connections made inside (the epoch check's own) are not refused."""
    token = _VERIFYING.set(True)
    try:
        yield
    finally:
        _VERIFYING.reset(token)


def run_id_of(info: Any) -> str | None:
    """The ``run_id`` in an ``INFO server`` reply (raw bytes or redis-py's parsed dict)."""
    if isinstance(info, dict):
        value = info.get("run_id")
        return str(value) if value else None
    if isinstance(info, bytes | str):
        text = info.decode(errors="replace") if isinstance(info, bytes) else info
        for line in text.splitlines():
            if line.startswith("run_id:"):
                return line.split(":", 1)[1].strip() or None
    return None


class ServerIdentityGuard:
    """Installed as redis-py's ``redis_connect_func`` on the cache client's pool."""

    __slots__ = ("_state", "verified_run_id")

    def __init__(self, state: TierState) -> None:
        self._state = state
        # Set by the epoch watch when it vouches for (or installs) a generation.
        self.verified_run_id: str | None = None

    async def on_connect(self, connection: AbstractConnection) -> None:
        await connection.on_connect()  # the handshake redis-py would have done
        expected = self.verified_run_id
        if expected is None or self._state.generation is None or _VERIFYING.get():
            return
        await connection.send_command("INFO", "server")
        run_id = run_id_of(await connection.read_response())
        if run_id is None or run_id == expected:
            return
        self._state.distrust()
        raise ServerChanged(
            f"Redis run id changed ({expected[:8]}… → {run_id[:8]}…): restarted, restored "
            "or failed over; reading nothing from it until the cache turns over"
        )
