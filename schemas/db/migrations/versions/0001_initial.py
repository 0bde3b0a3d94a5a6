"""initial tables

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22

The column types Money and UTCDateTime come from schemas.db.tables: Decimal money (text on SQLite,
NUMERIC on PostgreSQL) and aware UTC times.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import schemas.db.tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('failure_cause', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('requester', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('root_ts', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('budget_usd', schemas.db.tables.Money(precision=14, scale=6), nullable=False),
    sa.Column('cap_usd', schemas.db.tables.Money(precision=14, scale=6), nullable=False),
    sa.Column('warn', sa.Float(), nullable=False),
    sa.Column('spend_usd', schemas.db.tables.Money(precision=14, scale=6), nullable=False),
    sa.Column('allowance_usd', schemas.db.tables.Money(precision=14, scale=6), nullable=True),
    sa.Column('on_demand_ok', sa.Boolean(), nullable=False),
    sa.Column('approved_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('decided_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('quote_expires_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('stop_reason', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('recoveries', sa.Integer(), nullable=False),
    sa.Column('lease_until', schemas.db.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_status'), ['status'], unique=False)

    op.create_table('approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('over_budget', sa.Boolean(), nullable=False),
    sa.Column('as_approver', sa.Boolean(), nullable=False),
    sa.Column('at', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approvals_job_id'), ['job_id'], unique=False)

    op.create_table('attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('instance_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('instance_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('zone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('market', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('hourly_usd', schemas.db.tables.Money(precision=14, scale=6), nullable=True),
    sa.Column('launched_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job_id', 'attempt', name='uq_attempt_job_number')
    )
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attempts_instance_id'), ['instance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attempts_job_id'), ['job_id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('at', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_job_id'), ['job_id'], unique=False)

    op.create_table('quotes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('recommended_rank', sa.Integer(), nullable=True),
    sa.Column('over_budget_usd', schemas.db.tables.Money(precision=14, scale=6), nullable=False),
    sa.Column('created_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quotes_job_id'), ['job_id'], unique=False)

    op.create_table('spend_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('interval_start', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('interval_end', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('billed_seconds', sa.Integer(), nullable=False),
    sa.Column('price_usd_per_hour', schemas.db.tables.Money(precision=14, scale=6), nullable=False),
    sa.Column('amount_usd', schemas.db.tables.Money(precision=14, scale=6), nullable=False),
    sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id'], ),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('spend_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spend_entries_job_id'), ['job_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('spend_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spend_entries_job_id'))

    op.drop_table('spend_entries')
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quotes_job_id'))

    op.drop_table('quotes')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_job_id'))

    op.drop_table('events')
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attempts_job_id'))
        batch_op.drop_index(batch_op.f('ix_attempts_instance_id'))

    op.drop_table('attempts')
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_approvals_job_id'))

    op.drop_table('approvals')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_status'))

    op.drop_table('jobs')
