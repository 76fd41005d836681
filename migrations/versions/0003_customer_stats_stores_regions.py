"""customer stats: stores and regions the customer is linked to

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 23:09:24.081224
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('customer_stats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stores', sa.String(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('regions', sa.String(), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('customer_stats', schema=None) as batch_op:
        batch_op.drop_column('regions')
        batch_op.drop_column('stores')
