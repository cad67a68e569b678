"""Coherence across processes: the cache outbox, the generation floor, turn ids.

* ``cache_outbox``: cache invalidations owed, written in each memory write's own
  transaction and drained by every process (docs/architecture.md invariant 7).
* ``cache_generations``: the authoritative floor of the cache generation per key prefix.
* ``conversation_memories.turn_id`` with a unique (user_id, turn_id): a retried turn is
  stored once.
* an index on ``memory_versions.updated_at``: the consistency checker samples recent
  writes by it.

Revision ID: 0006_coherence
Revises: 0005
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_coherence"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cache_outbox",
        sa.Column("family", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(600), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("enqueued_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("family", "entity_id", name=op.f("pk_cache_outbox")),
    )
    op.create_index(op.f("ix_cache_outbox_enqueued_at"), "cache_outbox", ["enqueued_at"])
    op.create_table(
        "cache_generations",
        sa.Column("prefix", sa.String(200), nullable=False),
        sa.Column("generation", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_cache_generations")),
    )
    with op.batch_alter_table("conversation_memories") as batch:
        batch.add_column(sa.Column("turn_id", sa.Uuid(), nullable=True))
        batch.create_unique_constraint("uq_conversation_memories_user_turn", ["user_id", "turn_id"])
    op.create_index(op.f("ix_memory_versions_updated_at"), "memory_versions", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_memory_versions_updated_at"), table_name="memory_versions")
    with op.batch_alter_table("conversation_memories") as batch:
        batch.drop_constraint("uq_conversation_memories_user_turn", type_="unique")
        batch.drop_column("turn_id")
    op.drop_table("cache_generations")
    op.drop_index(op.f("ix_cache_outbox_enqueued_at"), table_name="cache_outbox")
    op.drop_table("cache_outbox")
