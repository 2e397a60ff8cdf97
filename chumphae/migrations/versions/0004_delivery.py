"""delivery: notices, contact points, preferences, LINE link codes

Revision ID: 0004
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import chumphae.models.types

revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None

UTC = chumphae.models.types.UTCDateTime(timezone=True)
S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('notice',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', S(length=36), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=True),
    sa.Column('event', S(length=16), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('channel', S(length=12), nullable=False),
    sa.Column('status', S(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('provider_message_id', S(length=128), nullable=True),
    sa.Column('last_error', S(length=200), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('next_try_at', UTC, nullable=False),
    sa.Column('lease_until', UTC, nullable=True),
    sa.Column('first_try_at', UTC, nullable=True),
    sa.Column('done_at', UTC, nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alert.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.create_index('ix_notice_due', ['status', 'next_try_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notice_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notice_user_id'), ['user_id'], unique=False)

    op.create_table('contact_point',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('channel', S(length=12), nullable=False),
    sa.Column('address', S(length=512), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'channel', name='uq_contact_point_user_channel')
    )
    with op.batch_alter_table('contact_point', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_point_user_id'), ['user_id'], unique=False)

    op.create_table('delivery_preference',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('quiet_start', S(length=5), nullable=True),
    sa.Column('quiet_end', S(length=5), nullable=True),
    sa.Column('updated_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('user_id')
    )

    op.create_table('line_link_code',
    sa.Column('code_hash', S(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.Column('used_at', UTC, nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('code_hash')
    )
    with op.batch_alter_table('line_link_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_line_link_code_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('line_link_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_line_link_code_user_id'))
    op.drop_table('line_link_code')
    op.drop_table('delivery_preference')
    with op.batch_alter_table('contact_point', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_point_user_id'))
    op.drop_table('contact_point')
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notice_user_id'))
        batch_op.drop_index(batch_op.f('ix_notice_alert_id'))
        batch_op.drop_index('ix_notice_due')
    op.drop_table('notice')
