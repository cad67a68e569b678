"""The only place that builds Redis key names.

Every per-user key carries the hash tag ``{u:<id>}`` so all of one user's keys live in
one Redis Cluster slot and each Lua script touches a single slot. The global
generation is part of the key: turning it over orphans every context at once (the old
keys simply expire), which is how the cache forgets everything after Redis lost data or
a process lost track of too many writes, without ``KEYS`` or ``FLUSHDB``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

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


# ------------------------------------------------------------ store namespaces
#
# The LangGraph store caches one value per namespace (``memlayer.store``). Labels may hold
# any character, braces and colons included, so a namespace's text never goes into a key:
# its digest does, as the hash tag (all of one namespace's keys in one slot) and as its
# entity id in the outbox.

NAMESPACE_FAMILY = "ns"  # store namespaces, keyed by namespace_digest (the outbox's family)
_DIGEST_LEN = 32
_DIGEST = re.compile(r"[0-9a-f]{32}")
_DIGEST_BYTES = re.compile(rb"[0-9a-f]{32}")


@lru_cache(maxsize=65_536)
def namespace_digest(text: str) -> str:
    """128 bits of SHA-256 of a namespace's text (UTF-8), as 32 hex digits."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def is_namespace_digest(text: str) -> bool:
    """Whether ``text`` can name a namespace's keys (an outbox row's entity id, say)."""
    return _DIGEST.fullmatch(text) is not None


def _namespace_tag(prefix: str, digest: str) -> str:
    # Only a digest may name a namespace's slot (as only an int may name a user's).
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"not a namespace digest: {digest!r}")
    return f"{prefix}:{SCHEMA_TAG}:{{n:{digest}}}"


def namespace_key(prefix: str, digest: str, generation: int) -> str:
    """``{prefix}:v1:{n:<digest>}:g<generation>:ns`` — one value per store namespace."""
    return f"{_namespace_tag(prefix, digest)}:g{generation}:ns"


def namespace_lease_key(prefix: str, digest: str, generation: int) -> str:
    """The fill lease of the same namespace, in the same slot as its value."""
    return f"{_namespace_tag(prefix, digest)}:g{generation}:lease"


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


# ------------------------------------------------------------------ parsing (near-cache)
#
# Redis client tracking (``cache.invalidation``) reports changed keys by name; these turn
# a name back into what it names. Parsing sits here, next to building, so the two cannot
# drift apart: a test round-trips every builder through its parser.

CONTEXT_FAMILY = "ctx"  # memory contexts, keyed by user id (the outbox's family too)


@dataclass(frozen=True, slots=True)
class EntityKey:
    """A cached entity named by a key: its family, its id and the generation it lives in."""

    family: str
    entity_id: int | str  # a user id (``ctx``), a namespace digest (``ns``)
    generation: int


@dataclass(frozen=True, slots=True)
class ProbeKey:
    """A lag probe: the writer's pid and wall clock (ns) are in its name (``cache.lag_probe``)."""

    writer_pid: int
    written_ns: int


@dataclass(frozen=True, slots=True)
class EpochKey:
    """The epoch record (``epoch_key``): it changes only when the cache turns over."""


@dataclass(frozen=True, slots=True)
class OtherKey:
    """A key under a tracked prefix that names no cached entity (a fill lease, say)."""


EPOCH_KEY = EpochKey()
OTHER_KEY = OtherKey()
TrackedKey = EntityKey | ProbeKey | EpochKey | OtherKey


def tracked_prefixes(prefix: str) -> tuple[str, str, str, str]:
    """The key prefixes a near-cache tracks: every per-user key, the lag probes, the
    epoch record (so another process's turnover reaches every process at once) and every
    per-namespace key of the LangGraph store.

    Non-overlapping, as Redis requires of one client's BCAST prefixes. The per-user and
    per-namespace prefixes also cover fill leases (``lease_key``,
    ``namespace_lease_key``): their invalidations are parsed as :data:`OTHER_KEY` and
    ignored.
    """
    return (
        f"{prefix}:{SCHEMA_TAG}:{{u:",
        f"{prefix}:{SCHEMA_TAG}:probe:",
        epoch_key(prefix),
        f"{prefix}:{SCHEMA_TAG}:{{n:",
    )


def probe_key(prefix: str, pid: int, written_ns: int) -> str:
    """``{prefix}:v1:probe:<pid>:<ns>`` — a short-lived key whose name carries its write time."""
    return f"{prefix}:{SCHEMA_TAG}:probe:{int(pid)}:{int(written_ns)}"


class KeyParser:
    """Parses key names of one prefix; built once, so parsing a message costs no set-up."""

    __slots__ = ("_epoch", "_namespace", "_probe", "_user")

    def __init__(self, prefix: str) -> None:
        user, probe, epoch, namespace = tracked_prefixes(prefix)
        self._user = user.encode()
        self._probe = probe.encode()
        self._epoch = epoch.encode()
        self._namespace = namespace.encode()

    def parse(self, name: bytes) -> TrackedKey | None:
        """What ``name`` names; None for a key of another prefix or a malformed one."""
        user = self._user
        if name.startswith(user):
            close = name.find(b"}:g", len(user))
            if close < 0:
                return None
            generation, sep, kind = name[close + 3 :].partition(b":")
            try:
                entity_id = int(name[len(user) : close])
                gen = int(generation)
            except ValueError:
                return None
            if not sep:
                return None
            if kind == b"ctx":
                return EntityKey(CONTEXT_FAMILY, entity_id, gen)
            return OTHER_KEY
        if name.startswith(self._namespace):
            return self._parse_namespace(name)
        if name.startswith(self._probe):
            pid, sep, stamp = name[len(self._probe) :].partition(b":")
            try:
                return ProbeKey(int(pid), int(stamp)) if sep else None
            except ValueError:
                return None
        if name == self._epoch:
            return EPOCH_KEY
        return None

    def _parse_namespace(self, name: bytes) -> TrackedKey | None:
        """``…{n:<digest>}:g<generation>:ns`` (a lease of the same slot: OTHER_KEY)."""
        start = len(self._namespace)
        close = start + _DIGEST_LEN
        digest = name[start:close]
        if name[close : close + 3] != b"}:g" or not _DIGEST_BYTES.fullmatch(digest):
            return None
        generation, sep, kind = name[close + 3 :].partition(b":")
        try:
            gen = int(generation)
        except ValueError:
            return None
        if not sep:
            return None
        if kind == b"ns":
            return EntityKey(NAMESPACE_FAMILY, digest.decode("ascii"), gen)
        return OTHER_KEY
