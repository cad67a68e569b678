"""The only place that builds Redis key names.

Every per-user key carries the hash tag ``{u:<id>}`` so all of one user's keys live in
one Redis Cluster slot and each Lua script touches a single slot. The global
generation is part of the key: turning it over orphans every context at once (the old
keys simply expire), which is how the cache forgets everything after Redis lost data or
a process lost track of too many writes, without ``KEYS`` or ``FLUSHDB``.
"""

from __future__ import annotations

SCHEMA_TAG = "v1"


def _tag(prefix: str, user_id: int) -> str:
    # int() so a key can only ever be built from an integer id (isolation, invariant 10).
    return f"{prefix}:{SCHEMA_TAG}:{{u:{int(user_id)}}}"


def context_key(prefix: str, user_id: int, generation: int) -> str:
    """``{prefix}:v1:{u:<id>}:g<generation>:ctx`` — one msgpack value per user."""
    return f"{_tag(prefix, user_id)}:g{generation}:ctx"


def lease_key(prefix: str, user_id: int, generation: int) -> str:
    """The fill lease of the same user, in the same slot as its context key."""
    return f"{_tag(prefix, user_id)}:g{generation}:lease"


def epoch_key(prefix: str) -> str:
    """The epoch record: ``<generation>:<Redis run id>`` (no hash tag: only read alone).

    Its absence, a run id that is not the server's, or a generation lower than one
    known elsewhere means Redis lost data: the cache turns over (``cache.epoch``).
    """
    return f"{prefix}:{SCHEMA_TAG}:epoch"


def legacy_generation_key(prefix: str) -> str:
    """The generation counter of the scheme before epoch records (read by turnovers only,
    so an upgraded service never reuses a generation the old one may have left keys in)."""
    return f"{prefix}:{SCHEMA_TAG}:generation"


def scan_pattern(prefix: str) -> str:
    """A SCAN MATCH pattern for every key of this prefix (glob characters escaped)."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    return f"{escaped}:{SCHEMA_TAG}:*"
