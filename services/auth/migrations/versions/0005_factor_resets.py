"""SWV admins and the four-eyes reset of a lost second factor (the identity issue).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_admins",
        sa.Column("staff_id", sa.String(36), primary_key=True),
        sa.Column("granted_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "auth_factor_resets",
        sa.Column("reset_id", sa.String(36), primary_key=True),
        sa.Column("staff_id", sa.String(36), nullable=False, index=True),
        sa.Column("requested_by", sa.String(36), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("approved_by", sa.String(36), nullable=True),
        sa.Column("approved_at", UtcDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("auth_factor_resets")
    op.drop_table("auth_admins")
