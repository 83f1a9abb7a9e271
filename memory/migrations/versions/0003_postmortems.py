"""Post-mortems: one document per incident.

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import firebreak.state.base

revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'postmortems',
        sa.Column('incident_id', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('document', sa.JSON(), nullable=False),
        sa.Column('created_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=128), nullable=False),
        sa.Column('published_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column('reminded_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('incident_id'),
    )
    with op.batch_alter_table('postmortems', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_postmortems_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('postmortems', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_postmortems_status'))
    op.drop_table('postmortems')
