"""Spotting the COMMIT of a memory write in a Postgres client's byte stream.

The chaos run's "commit failure" lets a write's COMMIT reach Postgres and then cuts the
connection before the reply (``proxy.ChaosProxy.cut_after_next_match``): the write is
committed, and the API process cannot know it. Cutting just any COMMIT would mostly hit
session bookkeeping, so this reads the frontend protocol (v3) closely enough to tell a
transaction that bumped a memory version: a statement that inserts into or updates
``memory_versions``, sent as a simple query or as an extended-protocol Parse whose
prepared statement a later Bind may reuse by name (asyncpg caches prepared statements,
so the SQL text is not sent again). COMMIT itself goes as a simple query.

An encrypted connection (the server accepted SSL) cannot be read: the watch gives up.
"""

from __future__ import annotations

import re
import struct

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_TLS_HANDSHAKE = 0x16
# The version bump (an upsert, possibly inside a CTE). Not a read that merely names the
# table, nor one whose columns happen to contain the word (``updated_at``, FOR UPDATE).
_WRITE = re.compile(rb"\b(?:INSERT\s+INTO|UPDATE)\s+memory_versions\b", re.IGNORECASE)


def _is_write(sql: bytes) -> bool:
    return _WRITE.search(sql) is not None


def _cstring(body: bytes, start: int) -> tuple[bytes, int]:
    end = body.index(b"\0", start)
    return body[start:end], end + 1


class WriteCommitWatch:
    """Feed it a connection's client bytes; it says when they carry a memory write's COMMIT."""

    __slots__ = ("_buffer", "_encrypted", "_started", "_write_statements", "_writing")

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False  # past the untyped start-up messages
        self._encrypted = False
        self._write_statements: set[bytes] = set()  # prepared statements that write
        self._writing = False  # the open transaction has written a memory version

    def feed(self, data: bytes) -> bool:
        if self._encrypted:
            return False
        self._buffer += data
        commit = False
        while True:
            message = self._next_message()
            if message is None:
                return commit
            kind, body = message
            commit = self._on_message(kind, body) or commit

    def _next_message(self) -> tuple[bytes, bytes] | None:
        buffer = self._buffer
        if not self._started:
            if buffer[:1] == bytes([_TLS_HANDSHAKE]):
                self._encrypted = True  # a TLS ClientHello after the server said 'S'
                return None
            if len(buffer) < 8:
                return None
            (length,) = struct.unpack("!I", buffer[:4])
            if len(buffer) < length:
                return None
            (code,) = struct.unpack("!I", buffer[4:8])
            self._buffer = buffer[length:]
            if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                self._started = True  # the StartupMessage: typed messages follow
            return b"", b""
        if len(buffer) < 5:
            return None
        (length,) = struct.unpack("!I", buffer[1:5])
        if len(buffer) < 1 + length:
            return None
        kind, body = buffer[:1], buffer[5 : 1 + length]
        self._buffer = buffer[1 + length :]
        return kind, body

    def _on_message(self, kind: bytes, body: bytes) -> bool:
        if kind == b"Q":
            sql, _ = _cstring(body, 0)
            verb = sql.strip().upper()
            if verb.startswith((b"COMMIT", b"END")):
                wrote, self._writing = self._writing, False
                return wrote
            if verb.startswith((b"ROLLBACK", b"BEGIN", b"START")):
                self._writing = False
            elif _is_write(sql):
                self._writing = True
        elif kind == b"P":
            name, at = _cstring(body, 0)
            sql, _ = _cstring(body, at)
            if _is_write(sql):
                self._write_statements.add(name)
            else:
                self._write_statements.discard(name)
        elif kind == b"B":
            _portal, at = _cstring(body, 0)
            statement, _ = _cstring(body, at)
            if statement in self._write_statements:
                self._writing = True
        return False
