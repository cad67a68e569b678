"""The store's two tables, as SQLAlchemy Core (the migration creates exactly these).

``store_namespaces`` holds one row per namespace ever written and per ancestor of one (the
root is ``""``). Rows are never deleted, so a namespace's versions never start over:

- ``version`` is bumped by every transaction that puts or deletes in the namespace, under
  the row's lock, so versions of one namespace are in commit order;
- ``tree_version`` is bumped on the namespace and all its ancestors when a namespace row is
  created below (or at) it, i.e. when the set of namespaces under a prefix grows.

``store_items`` holds the items; ``value`` is the item's JSON text verbatim (see values.py).
Text columns compare bytewise (``COLLATE "C"`` on Postgres) so prefix ranges and orders agree
with Python's code-point order.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects import postgresql

from memlayer.memory.models import NAMING_CONVENTION, UTCDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Bytewise on both dialects: SQLite's default collation already is.
BytewiseText = Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

store_namespaces = Table(
    "store_namespaces",
    metadata,
    Column("namespace", BytewiseText, nullable=False),
    Column("depth", Integer, nullable=False),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("tree_version", BigInteger, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("namespace", name="pk_store_namespaces"),
)

store_items = Table(
    "store_items",
    metadata,
    Column("namespace", BytewiseText, nullable=False),
    Column("key", BytewiseText, nullable=False),
    Column("value", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("ttl_minutes", Float, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("namespace", "key", name="pk_store_items"),
    ForeignKeyConstraint(
        ["namespace"],
        ["store_namespaces.namespace"],
        name="fk_store_items_namespace_store_namespaces",
    ),
)

# A search within one namespace reads this index in its order (newest first).
Index(
    "ix_store_items_recent",
    store_items.c.namespace,
    store_items.c.updated_at.desc(),
    store_items.c.key,
)
# The sweeper's index: only rows that can expire.
Index(
    "ix_store_items_expires_at",
    store_items.c.expires_at,
    postgresql_where=text("expires_at IS NOT NULL"),
    sqlite_where=text("expires_at IS NOT NULL"),
)
