"""memlayer's memory tables and the per-user memory version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 08:32:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "memory_versions",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        _user_fk("memory_versions"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_memory_versions")),
    )
    op.create_table(
        "conversation_memories",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("chat_session_id", sa.Uuid(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("intent", sa.String(50), nullable=True),
        sa.Column("entities", JSON, nullable=False),
        sa.Column("message_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        _user_fk("conversation_memories"),
        sa.ForeignKeyConstraint(
            ["chat_session_id"],
            ["chat_sessions.session_id"],
            name=op.f("fk_conversation_memories_chat_session_id_chat_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_memories")),
    )
    op.create_index(
        "ix_conversation_memories_user_recent",
        "conversation_memories",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        op.f("ix_conversation_memories_chat_session_id"),
        "conversation_memories",
        ["chat_session_id"],
    )
    op.create_table(
        "user_preferences",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", JSON, nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        _user_fk("user_preferences"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_preferences")),
        sa.UniqueConstraint("user_id", "key", name="uq_user_preferences_user_key"),
    )
    op.create_table(
        "entity_memories",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("entity_type", sa.String(50), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("mention_count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("first_seen", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("last_seen", TS, server_default=sa.func.now(), nullable=False),
        _user_fk("entity_memories"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entity_memories")),
        sa.UniqueConstraint(
            "user_id", "entity_type", "name", name="uq_entity_memories_user_type_name"
        ),
    )
    op.create_index(
        "ix_entity_memories_user_top",
        "entity_memories",
        ["user_id", sa.text("mention_count DESC"), sa.text("last_seen DESC")],
    )


def downgrade() -> None:
    op.drop_table("entity_memories")
    op.drop_table("user_preferences")
    op.drop_table("conversation_memories")
    op.drop_table("memory_versions")
