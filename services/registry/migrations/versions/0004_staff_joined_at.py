"""When each staff member's current join took effect, so a departure dated before it is refused;
and the ids of the entities each accepted mutation touched, for its answer.

People who joined before this keep NULL: their departures are not checked against a join date.
Mutations accepted before this answer with no entity ids (`{}`).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registry_people") as batch:
        batch.add_column(sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("registry_mutations") as batch:
        batch.add_column(sa.Column("entity_ids", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registry_mutations") as batch:
        batch.drop_column("entity_ids")
    with op.batch_alter_table("registry_people") as batch:
        batch.drop_column("joined_at")
