"""attempts.client_token: the launch's idempotency key on the attempt row (issue 14)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Nullable: attempts launched before this revision simply have none.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attempts') as batch:
        batch.add_column(sa.Column('client_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('attempts') as batch:
        batch.drop_column('client_token')
