"""sessions: ended_at (the owner ended it) and conversation_id (its chat history).

``ended_at`` makes an end visible to every API process on a socket's next frame.
``conversation_id`` ties a session to its conversation in ``chat_sessions`` so that a
reconnect on any process continues the same conversation (the short-term state of a
session is rebuilt from Postgres each turn; no process keeps it).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("conversation_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_sessions_conversation_id_chat_sessions"),
            "chat_sessions",
            ["conversation_id"],
            ["session_id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_constraint(op.f("fk_sessions_conversation_id_chat_sessions"), type_="foreignkey")
        batch.drop_column("conversation_id")
        batch.drop_column("ended_at")
