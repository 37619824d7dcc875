"""Access state (staff, branches, dossiers, grants, missing contacts, view chain), outboxes, consumer progress.

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
    create_outbox_tables(op, "access")
    create_progress_tables(op)
    op.create_table(
        "access_branches",
        sa.Column("branch_id", sa.String(length=36), nullable=False),
        sa.Column("wijknetwerk", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("branch_id"),
    )
    op.create_index(op.f("ix_access_branches_wijknetwerk"), "access_branches", ["wijknetwerk"], unique=False)
    op.create_table(
        "access_dossiers",
        sa.Column("dossier_id", sa.String(length=36), nullable=False),
        sa.Column("branch_id", sa.String(length=36), nullable=False),
        sa.Column("contact_staff_id", sa.String(length=36), nullable=False),
        sa.Column("contact_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pupil_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("dossier_id"),
    )
    op.create_index(op.f("ix_access_dossiers_branch_id"), "access_dossiers", ["branch_id"], unique=False)
    op.create_index(op.f("ix_access_dossiers_contact_staff_id"), "access_dossiers", ["contact_staff_id"], unique=False)
    op.create_index(op.f("ix_access_dossiers_pupil_id"), "access_dossiers", ["pupil_id"], unique=False)
    op.create_table(
        "access_grants",
        sa.Column("staff_id", sa.String(length=36), nullable=False),
        sa.Column("dossier_id", sa.String(length=36), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("staff_id", "dossier_id"),
    )
    op.create_index("ix_access_grants_dossier", "access_grants", ["dossier_id"], unique=False)
    op.create_table(
        "access_missing_contacts",
        sa.Column("dossier_id", sa.String(length=36), nullable=False),
        sa.Column("branch_id", sa.String(length=36), nullable=False),
        sa.Column("previous_contact_staff_id", sa.String(length=36), nullable=False),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dossier_id"),
    )
    op.create_table(
        "access_staff",
        sa.Column("staff_id", sa.String(length=36), nullable=False),
        sa.Column("branch_id", sa.String(length=36), nullable=True),
        sa.Column("role", sa.String(length=40), nullable=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("role_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("access_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wijknetwerken", sa.String(length=2000), nullable=False),
        sa.Column("departed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("departure_recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("staff_id"),
    )
    op.create_index(op.f("ix_access_staff_branch_id"), "access_staff", ["branch_id"], unique=False)
    op.create_table(
        "access_staff_departures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("staff_id", sa.String(length=36), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_access_staff_departures_staff_id"), "access_staff_departures", ["staff_id"], unique=False)
    op.create_table(
        "access_view_chain",
        sa.Column("dossier_id", sa.String(length=36), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("last_event_id", sa.String(length=100), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dossier_id"),
    )


def downgrade() -> None:
    for table in [
        "processed_events",
        "consumer_positions",
        "access_view_chain",
        "access_staff_departures",
        "access_staff",
        "access_outbox",
        "access_missing_contacts",
        "access_mail_outbox",
        "access_grants",
        "access_dossiers",
        "access_branches",
    ]:
        op.drop_table(table)
