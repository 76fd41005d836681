"""channel codes (渠道活码): the codes, their guides with duty schedules, and every add through them

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 02:39:55.622288
"""
from collections.abc import Sequence

import sqlalchemy as sa

import models.base
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'channel_codes',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.Enum('campaign', 'store', name='channelkind', native_enum=False, length=16),
                  nullable=False),
        sa.Column('store_id', _ID, nullable=True),
        sa.Column('contact_way_id', _ID, nullable=True),
        sa.Column('state', sa.String(length=30), nullable=True),
        sa.Column('skip_verify', sa.Boolean(), nullable=False),
        sa.Column('tag_ids', sa.JSON(), nullable=False),
        sa.Column('welcome_text', sa.String(length=4000), nullable=False),
        sa.Column('attachments', sa.JSON(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('duty_userids', sa.JSON(), nullable=False),
        sa.Column('duty_synced_at', models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('disabled_at', models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['contact_way_id'], ['contact_ways.id'],
                                name=op.f('fk_channel_codes_contact_way_id_contact_ways'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_channel_codes_store_id_stores'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_codes')),
        sa.UniqueConstraint('contact_way_id', name=op.f('uq_channel_codes_contact_way_id')),
        sa.UniqueConstraint('state', name=op.f('uq_channel_codes_state')),
    )
    op.create_index(op.f('ix_channel_codes_store_id'), 'channel_codes', ['store_id'], unique=False)

    op.create_table(
        'channel_code_members',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('code_id', _ID, nullable=False),
        sa.Column('staff_id', _ID, nullable=False),
        sa.Column('role', sa.Enum('primary', 'backup', name='dutyrole', native_enum=False, length=16), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('schedule', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['code_id'], ['channel_codes.id'],
                                name=op.f('fk_channel_code_members_code_id_channel_codes'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_channel_code_members_staff_id_staff'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_code_members')),
        sa.UniqueConstraint('code_id', 'staff_id', name='uq_channel_code_members_code_staff'),
    )
    op.create_index(op.f('ix_channel_code_members_code_id'), 'channel_code_members', ['code_id'], unique=False)
    op.create_index(op.f('ix_channel_code_members_staff_id'), 'channel_code_members', ['staff_id'], unique=False)

    op.create_table(
        'channel_code_adds',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('code_id', _ID, nullable=False),
        sa.Column('customer_id', _ID, nullable=False),
        sa.Column('staff_id', _ID, nullable=False),
        sa.Column('external_userid', sa.String(length=64), nullable=False),
        sa.Column('added_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['code_id'], ['channel_codes.id'],
                                name=op.f('fk_channel_code_adds_code_id_channel_codes'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                                name=op.f('fk_channel_code_adds_customer_id_customers'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_channel_code_adds_staff_id_staff'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_code_adds')),
        sa.UniqueConstraint('code_id', 'staff_id', 'external_userid', 'added_at', name='uq_channel_code_adds_event'),
    )
    op.create_index('ix_channel_code_adds_code_added', 'channel_code_adds', ['code_id', 'added_at'], unique=False)
    op.create_index(op.f('ix_channel_code_adds_customer_id'), 'channel_code_adds', ['customer_id'], unique=False)
    op.create_index(op.f('ix_channel_code_adds_staff_id'), 'channel_code_adds', ['staff_id'], unique=False)


def downgrade() -> None:
    # Indexes go with their tables.
    op.drop_table('channel_code_adds')
    op.drop_table('channel_code_members')
    op.drop_table('channel_codes')
