"""The LangGraph store's tables: namespaces with their versions, and items.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 08:05:00

Independent of the memory tables; see memlayer/store/schema.py for what each column is for.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
# Bytewise comparison, so prefix ranges and orders match Python's code-point order.
BYTEWISE = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "store_namespaces",
        sa.Column("namespace", BYTEWISE, nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tree_version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", name=op.f("pk_store_namespaces")),
    )
    op.create_table(
        "store_items",
        sa.Column("namespace", BYTEWISE, nullable=False),
        sa.Column("key", BYTEWISE, nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("ttl_minutes", sa.Float(), nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("namespace", "key", name=op.f("pk_store_items")),
        sa.ForeignKeyConstraint(
            ["namespace"],
            ["store_namespaces.namespace"],
            name=op.f("fk_store_items_namespace_store_namespaces"),
        ),
    )
    op.create_index(
        "ix_store_items_recent",
        "store_items",
        ["namespace", sa.text("updated_at DESC"), "key"],
    )
    op.create_index(
        "ix_store_items_expires_at",
        "store_items",
        ["expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL"),
        sqlite_where=sa.text("expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_store_items_expires_at", table_name="store_items")
    op.drop_index("ix_store_items_recent", table_name="store_items")
    op.drop_table("store_items")
    op.drop_table("store_namespaces")
