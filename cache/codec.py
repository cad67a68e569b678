"""Versioned msgpack encoding of a :class:`MemoryContext`.

Layout of a cached value::

    [1 schema byte][20 ASCII digits: memory version][1 flag byte][msgpack payload]

The version sits in a fixed-width decimal header so the Lua scripts can compare
versions with ``tonumber(string.sub(v, 2, 21))`` without decoding msgpack (and the same
code runs on fakeredis's Lua). The flag is ``C`` for a complete context or ``M`` for an
invalidation marker ("must reload; fills older than this version are refused"); a
marker has no payload. The payload is positional arrays, not maps: smaller and faster
to decode on the hot path. Timestamps are msgpack timestamps, so instants round-trip
exactly (they come back in UTC); a naive datetime is taken to be UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgpack

from memlayer.cache.errors import CodecError
from memlayer.records import EntityRecord, MemoryContext, MemoryRecord

SCHEMA = b"\x01"
COMPLETE = b"C"
MARKER = b"M"
HEADER_LEN = 22  # schema + 20 digits + flag
# Redis's Lua numbers are doubles: versions must stay exactly representable.
MAX_VERSION = 2**53

_SCHEMA_INT = SCHEMA[0]
_COMPLETE_INT = COMPLETE[0]
_MARKER_INT = MARKER[0]

# Everything msgpack or a malformed payload shape can raise while decoding. Anything
# else escaping decode() would be a bug in this module, not bad data.
_DECODE_ERRORS = (
    ValueError,  # includes msgpack's ExtraData/FormatError/StackError and UnicodeDecodeError
    TypeError,
    IndexError,
    KeyError,
    OverflowError,
    msgpack.UnpackException,
)


def _header(version: int, flag: bytes) -> bytes:
    if not 0 <= version <= MAX_VERSION:
        raise CodecError(f"memory version out of range: {version!r}")
    return b"%b%020d%b" % (SCHEMA, version, flag)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def encode(context: MemoryContext) -> bytes:
    """Encode a complete context. Raises :class:`CodecError` if it cannot be encoded."""
    if context.user_id is None:
        raise CodecError("anonymous contexts are never cached")
    try:
        payload: bytes = msgpack.packb(
            [
                context.user_id,
                [
                    [
                        m.id,
                        m.summary,
                        m.intent,
                        list(m.entities),
                        m.message_count,
                        _utc(m.created_at),
                        m.chat_session_id,
                    ]
                    for m in context.memories
                ],
                dict(context.preferences),
                [[e.type, e.name, e.mention_count, _utc(e.last_seen)] for e in context.entities],
            ],
            datetime=True,
        )
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise CodecError(f"cannot encode context of user {context.user_id}: {exc}") from exc
    return _header(context.version, COMPLETE) + payload


def encode_marker(version: int) -> bytes:
    """An invalidation marker: readers miss, fills below ``version`` are refused."""
    return _header(version, MARKER)


def is_marker(raw: bytes) -> bool:
    return len(raw) == HEADER_LEN and raw[0] == _SCHEMA_INT and raw[21] == _MARKER_INT


def value_version(raw: bytes) -> int:
    """The memory version in a value's header (for tests, ops and diagnostics)."""
    digits = raw[1:21]
    if len(raw) < HEADER_LEN or raw[0] != _SCHEMA_INT or not digits.isdigit():
        raise CodecError("not a memlayer cache value")
    return int(digits)


def decode(raw: bytes) -> MemoryContext | None:
    """Decode a cached value: a context, or ``None`` for an invalidation marker.

    Raises :class:`CodecError` for anything else (wrong schema byte, bad header,
    undecodable or mis-shaped payload). The caller treats that as a miss.
    """
    if len(raw) < HEADER_LEN or raw[0] != _SCHEMA_INT:
        raise CodecError("unknown schema or truncated value")
    digits = raw[1:21]
    if not digits.isdigit():
        raise CodecError("bad version header")
    flag = raw[21]
    if flag == _MARKER_INT:
        if len(raw) != HEADER_LEN:
            raise CodecError("marker with a payload")
        return None
    if flag != _COMPLETE_INT:
        raise CodecError("unknown value flag")
    try:
        user_id, memories, preferences, entities = msgpack.unpackb(
            memoryview(raw)[HEADER_LEN:], raw=False, strict_map_key=True, timestamp=3
        )
        if type(preferences) is not dict or type(user_id) is not int:
            raise TypeError("mis-shaped context payload")
        mem_records = tuple(
            MemoryRecord(mid, summary, intent, tuple(ents), count, created, chat)
            for mid, summary, intent, ents, count, created, chat in memories
        )
        ent_records = tuple(
            EntityRecord(etype, name, count, seen) for etype, name, count, seen in entities
        )
    except _DECODE_ERRORS as exc:
        raise CodecError(f"undecodable cache value: {exc}") from exc
    return MemoryContext(user_id, int(digits), mem_records, preferences, ent_records)


def decode_for(user_id: int, raw: bytes) -> MemoryContext | None:
    """:func:`decode` a value read under ``user_id``'s key; a foreign user's is corrupt."""
    context = decode(raw)
    if context is not None and context.user_id != user_id:
        raise CodecError(f"a value of user {context.user_id} under the key of user {user_id}")
    return context


# ------------------------------------------------------------------ framing (any family)
#
# Other key families (the LangGraph store's namespaces) keep the same header, so the same
# Lua scripts compare their versions; only the payload after it is theirs.


def frame(version: int, payload: bytes) -> bytes:
    """A complete value of any family: the header at ``version``, then ``payload``."""
    return _header(version, COMPLETE) + payload


def read_frame(raw: bytes) -> tuple[int, memoryview | None]:
    """``(version, payload)`` of a framed value; the payload is None for a marker.

    Raises :class:`CodecError` for anything that is not a value of ours.
    """
    if len(raw) < HEADER_LEN or raw[0] != _SCHEMA_INT:
        raise CodecError("unknown schema or truncated value")
    digits = raw[1:21]
    if not digits.isdigit():
        raise CodecError("bad version header")
    flag = raw[21]
    if flag == _MARKER_INT:
        if len(raw) != HEADER_LEN:
            raise CodecError("marker with a payload")
        return int(digits), None
    if flag != _COMPLETE_INT:
        raise CodecError("unknown value flag")
    return int(digits), memoryview(raw)[HEADER_LEN:]
