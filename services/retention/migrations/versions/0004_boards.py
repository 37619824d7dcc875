"""School boards: each branch's bevoegd gezag (whose FG acts for its pupils), the board a leak
was registered for, who registered it, the fixed text its mail is built from, and the second
FG's approval of a large mailing (API authentication issue).

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
    op.create_table("retention_branches",
                    sa.Column("branch_id", sa.String(36), primary_key=True),
                    sa.Column("bevoegd_gezag", sa.String(5), nullable=True))
    op.create_index("ix_retention_branches_bevoegd_gezag", "retention_branches", ["bevoegd_gezag"])
    with op.batch_alter_table("retention_leaks") as batch:
        batch.add_column(sa.Column("board", sa.String(60), nullable=True))
        batch.add_column(sa.Column("registered_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("notice", sa.String(40), nullable=True))
        batch.add_column(sa.Column("mailing_status", sa.String(20), nullable=True))
        batch.add_column(sa.Column("mailing_recipients", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("mailing_approved_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("mailing_approved_by", sa.String(200), nullable=True))
        batch.create_index("ix_retention_leaks_board", ["board"])
    with op.batch_alter_table("retention_purges") as batch:
        batch.add_column(sa.Column("branch_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retention_purges") as batch:
        batch.drop_column("branch_id")
    with op.batch_alter_table("retention_leaks") as batch:
        batch.drop_index("ix_retention_leaks_board")
        for column in ("board", "registered_by", "notice", "mailing_status", "mailing_recipients",
                       "mailing_approved_at", "mailing_approved_by"):
            batch.drop_column(column)
    op.drop_index("ix_retention_branches_bevoegd_gezag", table_name="retention_branches")
    op.drop_table("retention_branches")
