"""Durable workflows: approval claim and workflow columns, replica heartbeats.

Revision ID: 0004
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import firebreak.state.base

revision = '0004'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'replicas',
        sa.Column('executor_id', sa.String(length=128), nullable=False),
        sa.Column('boot_id', sa.String(length=64), nullable=False),
        sa.Column('started_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('last_seen', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('recovered_by', sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint('executor_id'),
    )
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('workflow_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('workflow_id')
    op.drop_table('replicas')
