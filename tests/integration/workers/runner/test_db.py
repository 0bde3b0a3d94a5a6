"""Migrations, money and time on both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import select

from schemas.db.tables import Job, SpendEntry, SQLModel


def test_migrations_create_exactly_the_tables(db):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, SQLModel.metadata) == []


def test_money_is_exact_and_times_are_aware(db):
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.session() as s:
        s.add(Job(id="j-money", status="awaiting_approval", requester="U", budget_usd=0.1,
                  cap_usd=Decimal("123456.789012"), created_at=now, updated_at=now))
        s.flush()
        s.add(SpendEntry(job_id="j-money", interval_start=now, interval_end=now,
                         billed_seconds=61, price_usd_per_hour=Decimal("0.4012"),
                         amount_usd=Decimal("0.006798"), rule="per-second, 60 s minimum"))
    with db.session() as s:
        job = s.get(Job, "j-money")
        assert job.budget_usd == Decimal("0.1") and job.cap_usd == Decimal("123456.789012")
        assert job.created_at == now and job.created_at.tzinfo is not None
        entry = s.exec(select(SpendEntry)).one()
        assert entry.amount_usd == Decimal("0.006798")
        assert sum([entry.amount_usd] * 3) == Decimal("0.020394")


def test_db_upgrade_command_works_from_any_directory(db_url, tmp_path):
    env = dict(os.environ, TRAINOPS_DATABASE_URL=db_url)
    out = subprocess.run([sys.executable, "-m", "bot.cli.main", "db", "upgrade"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "latest revision" in out.stdout


def test_db_upgrade_with_an_unreachable_database_is_one_line(tmp_path):
    env = dict(os.environ,
               TRAINOPS_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    out = subprocess.run([sys.executable, "-m", "bot.cli.main", "db", "upgrade"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
