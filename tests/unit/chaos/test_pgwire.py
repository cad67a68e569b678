"""Telling a memory write's COMMIT in a Postgres client's bytes (the commit-failure fault)."""

from __future__ import annotations

import struct

from memlayer.chaos.pgwire import WriteCommitWatch

WRITE = b"INSERT INTO memory_versions (user_id, version) VALUES ($1, 1) ON CONFLICT DO UPDATE"


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def startup() -> bytes:
    ssl_request = struct.pack("!II", 8, 80877103)
    body = struct.pack("!I", 196608) + b"user\0postgres\0\0"
    return ssl_request + struct.pack("!I", len(body) + 4) + body


def query(sql: bytes) -> bytes:
    return message(b"Q", sql + b"\0")


def parse(name: bytes, sql: bytes) -> bytes:
    return message(b"P", name + b"\0" + sql + b"\0" + struct.pack("!H", 0))


def bind(statement: bytes) -> bytes:
    return message(b"B", b"\0" + statement + b"\0" + struct.pack("!HHH", 0, 0, 0))


def test_only_the_commit_of_a_transaction_that_wrote_a_version_matches() -> None:
    watch = WriteCommitWatch()
    assert not watch.feed(startup())
    assert not watch.feed(query(b"BEGIN ISOLATION LEVEL READ COMMITTED;"))
    assert not watch.feed(parse(b"s1", b"SELECT version FROM memory_versions WHERE user_id=$1"))
    assert not watch.feed(bind(b"s1") + query(b"COMMIT;"))  # a read: not this one
    assert not watch.feed(query(b"BEGIN;") + parse(b"s2", WRITE) + bind(b"s2"))
    assert watch.feed(query(b"COMMIT;"))


def test_reads_that_name_the_table_or_an_updated_column_are_not_writes() -> None:
    watch = WriteCommitWatch()
    watch.feed(startup())
    for read in (
        b"SELECT version, updated_at FROM memory_versions WHERE user_id = $1",
        b"SELECT version FROM memory_versions WHERE user_id = $1 FOR UPDATE",
    ):
        assert not watch.feed(query(b"BEGIN;") + parse(b"", read) + bind(b"") + query(b"COMMIT;"))
    cte = (
        b"WITH v AS (INSERT INTO memory_versions (user_id) VALUES ($1) RETURNING version) SELECT 1"
    )
    assert watch.feed(query(b"BEGIN;") + parse(b"", cte) + bind(b"") + query(b"COMMIT;"))


def test_a_prepared_write_reused_by_name_is_recognised_without_its_sql() -> None:
    watch = WriteCommitWatch()
    watch.feed(startup() + query(b"BEGIN;") + parse(b"__stmt_1__", WRITE) + bind(b"__stmt_1__"))
    assert watch.feed(query(b"COMMIT;"))
    assert not watch.feed(query(b"BEGIN;") + query(b"ROLLBACK;") + query(b"COMMIT;"))
    assert watch.feed(query(b"BEGIN;") + bind(b"__stmt_1__") + query(b"COMMIT;"))


def test_messages_split_across_reads_are_reassembled() -> None:
    stream = startup() + query(b"BEGIN;") + parse(b"", WRITE) + bind(b"") + query(b"COMMIT;")
    watch = WriteCommitWatch()
    matched = [watch.feed(stream[i : i + 1]) for i in range(len(stream))]
    assert matched.count(True) == 1 and matched[-1] is True


def test_an_encrypted_connection_is_never_matched() -> None:
    watch = WriteCommitWatch()
    ssl_request = struct.pack("!II", 8, 80877103)
    assert not watch.feed(ssl_request + b"\x16\x03\x01\x02\x00" + b"\x00" * 64)
    assert not watch.feed(query(b"BEGIN;") + parse(b"", WRITE) + bind(b"") + query(b"COMMIT;"))
