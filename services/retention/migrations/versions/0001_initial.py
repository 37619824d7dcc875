"""Pupils under retention, consents, the purge report, outboxes, consumer progress.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from shared.kafka.progress import create_progress_tables
from shared.outbox import create_outbox_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_tables(op, "retention")
    create_progress_tables(op)
    op.create_table(
        "retention_consents",
        sa.Column("pupil_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("giver", sa.String(length=10), nullable=False),
        sa.Column("given", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pupil_id", "purpose", "giver"),
    )
    op.create_table(
        "retention_pupils",
        sa.Column("pupil_id", sa.String(length=36), nullable=False),
        sa.Column("branch_id", sa.String(length=36), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("enrolled", sa.Boolean(), nullable=False),
        sa.Column("left_on", sa.Date(), nullable=True),
        sa.Column("has_swv_dossier", sa.Boolean(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("pupil_id"),
    )
    op.create_index(op.f("ix_retention_pupils_due_on"), "retention_pupils", ["due_on"], unique=False)
    op.create_table(
        "retention_purges",
        sa.Column("pupil_id", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pupil_id"),
    )


def downgrade() -> None:
    for table in [
        "retention_purges",
        "retention_pupils",
        "retention_outbox",
        "retention_mail_outbox",
        "retention_consents",
        "processed_events",
        "consumer_positions",
    ]:
        op.drop_table(table)
