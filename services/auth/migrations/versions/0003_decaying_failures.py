"""Failure counters decay: when each counter last counted a failure (the identity issue).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_failures") as batch:
        batch.add_column(sa.Column("last_failed_at", UtcDateTime(), nullable=True))
    # The counters were keyed by peer address and staff id; they are now keyed by login name and
    # the addresses are throttled in memory. Old counters would never be read again.
    op.execute("DELETE FROM auth_failures")


def downgrade() -> None:
    with op.batch_alter_table("auth_failures") as batch:
        batch.drop_column("last_failed_at")
