"""talk scripts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 23:26:33.479038
"""
from collections.abc import Sequence

import sqlalchemy as sa

import models.base
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('script_categories',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('order', sa.Integer(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_script_categories')),
    sa.UniqueConstraint('name', name=op.f('uq_script_categories_name'))
    )
    op.create_table('talk_scripts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('category_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('title', sa.String(length=128), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('attachment', sa.JSON(), nullable=True),
    sa.Column('condition', sa.Text(), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['script_categories.id'], name=op.f('fk_talk_scripts_category_id_script_categories')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_talk_scripts'))
    )
    with op.batch_alter_table('talk_scripts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_talk_scripts_category_id'), ['category_id'], unique=False)
        batch_op.create_index('ix_talk_scripts_enabled_priority', ['enabled', 'priority'], unique=False)

    op.create_table('script_sends',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('script_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('external_userid', sa.String(length=64), nullable=False),
    sa.Column('chat_id', sa.String(length=64), nullable=False),
    sa.Column('sent_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_script_sends_customer_id_customers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['script_id'], ['talk_scripts.id'], name=op.f('fk_script_sends_script_id_talk_scripts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_script_sends_staff_id_staff'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_script_sends'))
    )
    with op.batch_alter_table('script_sends', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_script_sends_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_script_sends_script_sent', ['script_id', 'sent_at'], unique=False)
        batch_op.create_index('ix_script_sends_staff_sent', ['staff_id', 'sent_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('script_sends', schema=None) as batch_op:
        batch_op.drop_index('ix_script_sends_staff_sent')
        batch_op.drop_index('ix_script_sends_script_sent')
        batch_op.drop_index(batch_op.f('ix_script_sends_customer_id'))

    op.drop_table('script_sends')
    with op.batch_alter_table('talk_scripts', schema=None) as batch_op:
        batch_op.drop_index('ix_talk_scripts_enabled_priority')
        batch_op.drop_index(batch_op.f('ix_talk_scripts_category_id'))

    op.drop_table('talk_scripts')
    op.drop_table('script_categories')
