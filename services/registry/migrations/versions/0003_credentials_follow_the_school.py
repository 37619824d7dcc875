"""Credentials follow the school, consultants belong to their office (issue 15).

Credentials get an office identity, branches they follow across a BRIN change and the keys of
their last rotation; people get the office that registered a consultant and its wijknetwerken.
A consultant registered before this keeps its old id; its office is recovered from the accepted
`consultant_joined` mutation (its sender) and the event that mutation emitted (the consultant's
id and wijknetwerken, readable in the outbox copy). Where that copy is gone the office stays
unknown (services/registry/domain.py says what that allows).

Revision ID: 0003
Revises: 0002
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registry_credentials") as batch:
        batch.add_column(sa.Column("office", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("branch_ids", sa.Text(), nullable=True))
        batch.add_column(sa.Column("previous_key_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("previous_signing_key", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("registry_people") as batch:
        batch.add_column(sa.Column("office", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("wijknetwerken", sa.Text(), nullable=True))
    _recover_consultant_offices(op.get_bind())


def _recover_consultant_offices(connection: sa.Connection) -> None:
    """In the order they were accepted, so a consultant registered twice gets the last office."""
    joined = connection.execute(sa.text(
        "SELECT sender, event_ids FROM registry_mutations WHERE kind = 'consultant_joined' "
        "ORDER BY received_at")).all()
    for sender, event_ids in joined:
        ids = json.loads(event_ids)
        value = connection.execute(sa.text("SELECT value FROM registry_outbox WHERE event_id = :id"),
                                   {"id": ids[0]}).scalar() if ids else None
        if value is None:
            continue
        data = json.loads(bytes(value)).get("data", {})
        if "staff_id" not in data:
            continue
        connection.execute(sa.text(
            "UPDATE registry_people SET office = :office, wijknetwerken = :wijknetwerken "
            "WHERE staff_id = :staff_id AND branch_id IS NULL"),
            {"office": sender, "wijknetwerken": json.dumps(sorted(data.get("wijknetwerken", []))),
             "staff_id": str(data["staff_id"])})


def downgrade() -> None:
    with op.batch_alter_table("registry_people") as batch:
        for column in ("wijknetwerken", "office"):
            batch.drop_column(column)
    with op.batch_alter_table("registry_credentials") as batch:
        for column in ("previous_valid_until", "previous_signing_key", "previous_key_hash", "branch_ids", "office"):
            batch.drop_column(column)
