"""Data-subject requests and the breach register.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('retention_leaks',
    sa.Column('leak_id', sa.String(length=36), nullable=False),
    sa.Column('nature', sa.String(length=200), nullable=False),
    sa.Column('consequences', sa.Text(), nullable=True),
    sa.Column('measures', sa.Text(), nullable=True),
    sa.Column('discovered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reported_pupil_ids', sa.JSON(), nullable=False),
    sa.Column('reported_dossier_ids', sa.JSON(), nullable=False),
    sa.Column('reported_staff_ids', sa.JSON(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('affected_pupil_ids', sa.JSON(), nullable=True),
    sa.Column('affected_dossier_ids', sa.JSON(), nullable=True),
    sa.Column('exposures', sa.JSON(), nullable=True),
    sa.Column('unknown_ids', sa.JSON(), nullable=True),
    sa.Column('parents_mailed', sa.Integer(), nullable=True),
    sa.Column('pupils_unreachable', sa.Integer(), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('report_reference', sa.String(length=200), nullable=True),
    sa.Column('delay_reason', sa.String(length=200), nullable=True),
    sa.Column('not_reportable_reason', sa.String(length=200), nullable=True),
    sa.Column('overdue_alarm_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('leak_id')
    )
    op.create_index(op.f('ix_retention_leaks_deadline'), 'retention_leaks', ['deadline'], unique=False)
    op.create_table('retention_requests',
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('pupil_id', sa.String(length=36), nullable=False),
    sa.Column('branch_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('requested_by', sa.String(length=10), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('extension_reason', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('refusal_reason', sa.String(length=300), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('corrected_fields', sa.JSON(), nullable=True),
    sa.Column('export_sealed', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('request_id')
    )
    op.create_index(op.f('ix_retention_requests_branch_id'), 'retention_requests', ['branch_id'], unique=False)
    op.create_index(op.f('ix_retention_requests_pupil_id'), 'retention_requests', ['pupil_id'], unique=False)



def downgrade() -> None:
    op.drop_index(op.f('ix_retention_requests_pupil_id'), table_name='retention_requests')
    op.drop_index(op.f('ix_retention_requests_branch_id'), table_name='retention_requests')
    op.drop_table('retention_requests')
    op.drop_index(op.f('ix_retention_leaks_deadline'), table_name='retention_leaks')
    op.drop_table('retention_leaks')

