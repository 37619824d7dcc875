"""Passkeys (WebAuthn) as a second factor beside TOTP (the identity issue).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_passkeys",
        sa.Column("credential_id", sa.String(1400), primary_key=True),
        sa.Column("staff_id", sa.String(36), nullable=False, index=True),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("sign_count", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_used_at", UtcDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("auth_passkeys")
