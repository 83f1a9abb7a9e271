"""Security: server-side web sessions, sign-in attempts, webhook replay cache, personal tokens.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import firebreak.state.base

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user', sa.String(length=128), nullable=False),
        sa.Column('created_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column('revoked_reason', sa.String(length=64), nullable=True),
        sa.Column('address', sa.String(length=64), nullable=True),
        sa.Column('user_agent', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_user'), ['user'], unique=False)

    op.create_table(
        'sign_in_attempts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('account', sa.String(length=128), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('sign_in_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_sign_in_attempts_account_at', ['account', 'at'], unique=False)
        batch_op.create_index('ix_sign_in_attempts_address_at', ['address', 'at'], unique=False)

    op.create_table(
        'replay_cache',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('seen_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    with op.batch_alter_table('replay_cache', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_replay_cache_expires_at'), ['expires_at'], unique=False)

    op.create_table(
        'personal_tokens',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user', sa.String(length=128), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=200), nullable=False),
        sa.Column('created_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', firebreak.state.base.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('personal_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_personal_tokens_user'), ['user'], unique=False)


def downgrade() -> None:
    for table, indexes in (
        ('personal_tokens', ['ix_personal_tokens_user']),
        ('replay_cache', ['ix_replay_cache_expires_at']),
        ('sign_in_attempts', ['ix_sign_in_attempts_address_at', 'ix_sign_in_attempts_account_at']),
        ('web_sessions', ['ix_web_sessions_user']),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in indexes:
                batch_op.drop_index(name)
        op.drop_table(table)
