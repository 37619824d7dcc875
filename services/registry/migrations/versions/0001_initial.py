"""Registry state, accepted mutations, event and mail outboxes, credentials, consumer progress.

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
    create_outbox_tables(op, "registry")
    create_progress_tables(op)
    op.create_table(
        "registry_branches",
        sa.Column("branch_id", sa.String(length=36), nullable=False),
        sa.Column("vestigingscode", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("wijknetwerk", sa.String(length=80), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("branch_id"),
    )
    op.create_table(
        "registry_codes",
        sa.Column("vestigingscode", sa.String(length=6), nullable=False),
        sa.Column("branch_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("vestigingscode"),
    )
    op.create_table(
        "registry_credentials",
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("signing_key", sa.LargeBinary(), nullable=False),
        sa.Column("brins", sa.Text(), nullable=False),
        sa.Column("wijknetwerken", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "registry_dossiers",
        sa.Column("dossier_id", sa.String(length=36), nullable=False),
        sa.Column("branch_id", sa.String(length=36), nullable=False),
        sa.Column("pupil_id", sa.String(length=36), nullable=False),
        sa.Column("contact_staff_id", sa.String(length=36), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("dossier_id"),
    )
    op.create_table(
        "registry_mutations",
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("mutation_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("event_ids", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sender", "mutation_id"),
    )
    op.create_table(
        "registry_people",
        sa.Column("staff_id", sa.String(length=36), nullable=False),
        sa.Column("branch_id", sa.String(length=36), nullable=True),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("staff_id"),
    )
    op.create_table(
        "registry_pupils",
        sa.Column("pupil_id", sa.String(length=36), nullable=False),
        sa.Column("branch_id", sa.String(length=36), nullable=False),
        sa.Column("enrolled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("pupil_id"),
    )


def downgrade() -> None:
    for table in [
        "registry_pupils",
        "registry_people",
        "registry_outbox",
        "registry_mutations",
        "registry_mail_outbox",
        "registry_dossiers",
        "registry_credentials",
        "registry_codes",
        "registry_branches",
        "processed_events",
        "consumer_positions",
    ]:
        op.drop_table(table)
