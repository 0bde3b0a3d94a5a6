"""spend guard: metering, warnings, progress, recovery, measured throughput (issue 6)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

New: progress_samples (the final chart), measured_runs (calibration fed back into quotes), the
guard's columns on jobs (warned_at_cap, stop_requested_at, progress_*, avoid_zones, resume_of,
reported_at) and spend_entries.price_source. All nullable or new: existing rows stay valid.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import schemas.db.tables

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('measured_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('gpu', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('gpu_count', sa.Integer(), nullable=False),
    sa.Column('instance_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('params_b', sa.Float(), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('gradient_checkpointing', sa.Boolean(), nullable=False),
    sa.Column('tokens_per_s', sa.Float(), nullable=False),
    sa.Column('seq_len', sa.Integer(), nullable=False),
    sa.Column('at', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job_id')
    )
    op.create_table('progress_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('at', schemas.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('total_steps', sa.Integer(), nullable=False),
    sa.Column('loss', sa.Float(), nullable=True),
    sa.Column('tokens_seen', sa.Integer(), nullable=False),
    sa.Column('tokens_per_s', sa.Float(), nullable=False),
    sa.Column('spend_usd', schemas.db.tables.Money(precision=14, scale=6), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('progress_samples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_progress_samples_job_id'), ['job_id'], unique=False)

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warned_at_cap', schemas.db.tables.Money(precision=14, scale=6), nullable=True))
        batch_op.add_column(sa.Column('stop_requested_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('progress_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('progress_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('progress_phase', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('avoid_zones', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('resume_of', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('reported_at', schemas.db.tables.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('spend_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('price_source', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('spend_entries', schema=None) as batch_op:
        batch_op.drop_column('price_source')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('reported_at')
        batch_op.drop_column('resume_of')
        batch_op.drop_column('avoid_zones')
        batch_op.drop_column('progress_phase')
        batch_op.drop_column('progress_at')
        batch_op.drop_column('progress_ref')
        batch_op.drop_column('stop_requested_at')
        batch_op.drop_column('warned_at_cap')

    with op.batch_alter_table('progress_samples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_progress_samples_job_id'))

    op.drop_table('progress_samples')
    op.drop_table('measured_runs')
