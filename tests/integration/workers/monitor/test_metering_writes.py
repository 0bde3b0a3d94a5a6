"""Metering writes only what changed (workers/monitor/spend.py), on SQLite and PostgreSQL: a
closed price interval is written once and left alone, the open interval and the disk line are
updated in place, a line the meter no longer gives is deleted, and the job's total is the exact
sum of its lines, each line price x seconds by its rule."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import select

from schemas.db.tables import Attempt, Job, SpendEntry
from tests.support.factories import quote
from tests.support.runner import db, db_url, runner_env  # noqa: F401
from workers.monitor import spend
from workers.rules.billing import GP3_USD_PER_GB_MONTH, SECONDS_PER_BILLING_MONTH, PricePoint
from workers.state import jobs

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ZONE = "us-east-1z"  # a zone of this test's own in the price cache


def _running_spot_job(db) -> tuple[str, int]:  # noqa: F811
    job_id = jobs.open_job(db, quote(), "UREQ", provider="aws")
    with db.session() as s:
        s.exec(sa.update(Job).where(Job.id == job_id).values(status="running"))
        attempt = Attempt(job_id=job_id, attempt=1, provider="aws", instance_id="i-meter",
                          instance_type="g5.xlarge", zone=ZONE, market="spot",
                          hourly_usd=Decimal("0.40"), launched_at=T0)
        s.add(attempt)
        s.flush()
        return job_id, attempt.id


def _lines(db, job_id):  # noqa: F811
    with db.session() as s:
        return {(e.interval_start, e.rule): e for e in s.exec(
            select(SpendEntry).where(SpendEntry.job_id == job_id)).all()}


def _spent(db, job_id) -> Decimal:  # noqa: F811
    with db.session() as s:
        return s.get(Job, job_id).spend_usd


def _usd(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.000001"), rounding="ROUND_HALF_UP")


def test_metering_writes_only_the_lines_that_changed(db, runner_env):  # noqa: F811
    job_id, attempt_id = _running_spot_job(db)
    # The spot price history the meter would read: $0.40 from launch, $0.50 ten minutes in.
    spend._history[("g5.xlarge", ZONE)] = (time.monotonic(), T0 - timedelta(minutes=5), [
        PricePoint(T0, Decimal("0.40"), f"spot {ZONE} (price history)"),
        PricePoint(T0 + timedelta(minutes=10), Decimal("0.50"), f"spot {ZONE} (price history)")])
    try:
        # 30 s in: the first interval and the 60 s minimum's top-up, and the disk.
        spend.meter(db, {}, T0 + timedelta(seconds=30))
        first = _lines(db, job_id)
        assert sorted(e.rule.split(" ")[0] for e in first.values()) == ["60", "gp3", "per-second"]
        topup = next(e for e in first.values() if "minimum" in e.rule)
        assert topup.billed_seconds == 30 and topup.rule.endswith("(30 s ran)")
        spend.meter(db, {}, T0 + timedelta(seconds=45))  # the same top-up line, shrunk
        shrunk = next(e for e in _lines(db, job_id).values() if "minimum" in e.rule)
        assert (shrunk.id, shrunk.billed_seconds, shrunk.rule.endswith("(45 s ran)")) == (
            topup.id, 15, True)

        spend.meter(db, {}, T0 + timedelta(minutes=20))
        second = _lines(db, job_id)
        assert len(second) == 3 and not any("minimum" in r for _, r in second)  # top-up gone
        closed = next(e for e in second.values() if e.interval_end == T0 + timedelta(minutes=10))

        now = T0 + timedelta(minutes=21)
        metered = spend.meter(db, {}, now)
        third = _lines(db, job_id)
        assert {e.id for e in third.values()} == {e.id for e in second.values()}  # no new rows
        kept = third[(closed.interval_start, closed.rule)]
        assert (kept.created_at, kept.amount_usd) == (closed.created_at, closed.amount_usd)
        assert all(e.interval_end == now for e in third.values() if e is not kept)

        # Every dollar: price x seconds by its rule, and the total is their exact sum.
        expected = {Decimal("0.40"): _usd(Decimal(600) * Decimal("0.40") / 3600),
                    Decimal("0.50"): _usd(Decimal(660) * Decimal("0.50") / 3600),
                    "gp3": _usd(Decimal(1260) * Decimal(200) * GP3_USD_PER_GB_MONTH
                                / SECONDS_PER_BILLING_MONTH)}
        got = {"gp3" if e.rule.startswith("gp3") else e.price_usd_per_hour: e.amount_usd
               for e in third.values()}
        assert got == expected
        total = sum(expected.values(), Decimal(0))
        assert _spent(db, job_id) == total == metered[job_id][0]

        # A line stored twice (two monitors inserted the same new line) is deleted again.
        with db.session() as s:
            copy = {c: getattr(kept, c) for c in
                    ("job_id", "attempt_id", "interval_start", "interval_end", "billed_seconds",
                     "price_usd_per_hour", "amount_usd", "rule", "price_source", "created_at")}
            s.add(SpendEntry(**copy))
        spend.meter(db, {}, now)
        assert len(_lines(db, job_id)) == 3 and _spent(db, job_id) == total
        with db.session() as s:
            assert s.exec(select(sa.func.count()).select_from(SpendEntry)
                          .where(SpendEntry.attempt_id == attempt_id)).one() == 3
    finally:
        spend._history.pop(("g5.xlarge", ZONE), None)
