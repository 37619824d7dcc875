"""Stream versions on outbox events, the relay's read-back of what it published, and the
consumers' per-stream progress (the durable-log issue).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from shared.kafka.progress import migrate_to_stream_versions
from shared.outbox import migrate_outbox_to_streams

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrate_outbox_to_streams(op, "auth")
    migrate_to_stream_versions(op)


def downgrade() -> None:
    op.drop_table("stream_versions")
    op.drop_index("ix_auth_outbox_stream", table_name="auth_outbox")
    with op.batch_alter_table("auth_outbox") as batch:
        for column in ("confirmed_at", "ack_offset", "ack_partition", "stream_version"):
            batch.drop_column(column)
