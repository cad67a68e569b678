"""sessions.user_id: free-form string -> INTEGER referencing users.id.

Every row is kept. Numeric strings (surrounding spaces allowed) that name an existing
user convert; anything else ('abc', '', 'user-7', ids of missing users, numbers too
large for an integer) becomes NULL, i.e. an anonymous session. The count of nulled
rows is logged, so an operator can see what the upgrade did.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 08:31:00
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("memlayer.migrations")

# A digit string of at most 9 digits always fits a 32-bit integer.
_NUMERIC = {
    "postgresql": "btrim(user_id) ~ '^[0-9]{1,9}$'",
    "sqlite": (
        "trim(user_id) <> '' AND trim(user_id) NOT GLOB '*[^0-9]*' AND length(trim(user_id)) <= 9"
    ),
}
_TRIM = {"postgresql": "btrim(user_id)", "sqlite": "trim(user_id)"}


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.add_column("sessions", sa.Column("user_id_int", sa.Integer(), nullable=True))
    op.execute(
        f"""
        UPDATE sessions SET user_id_int = CAST({_TRIM[dialect]} AS INTEGER)
         WHERE user_id IS NOT NULL AND {_NUMERIC[dialect]}
        """
    )
    # Ids of users that do not exist cannot satisfy the new foreign key.
    op.execute(
        "UPDATE sessions SET user_id_int = NULL WHERE user_id_int IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = sessions.user_id_int)"
    )
    total = bind.execute(sa.text("SELECT count(*) FROM sessions")).scalar_one()
    nulled = bind.execute(
        sa.text("SELECT count(*) FROM sessions WHERE user_id IS NOT NULL AND user_id_int IS NULL")
    ).scalar_one()
    log.warning(
        "sessions.user_id -> INTEGER: %d of %d session rows had a user id that is not an "
        "existing user's numeric id; they are now anonymous (user_id NULL)",
        nulled,
        total,
    )
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("user_id")
        batch.alter_column("user_id_int", new_column_name="user_id")
    with op.batch_alter_table("sessions") as batch:
        batch.create_foreign_key(
            "fk_sessions_user_id_users", "users", ["user_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index("ix_sessions_user_id", ["user_id"])


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_user_id")
        batch.drop_constraint("fk_sessions_user_id_users", type_="foreignkey")
        batch.add_column(sa.Column("user_id_str", sa.String(100), nullable=True))
    op.execute("UPDATE sessions SET user_id_str = CAST(user_id AS VARCHAR(100))")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("user_id")
        batch.alter_column("user_id_str", new_column_name="user_id")
