"""Metering in the monitor tick: price every live attempt, meter it (workers/rules/billing.py), and
write its spend entries and the job's total.

Idempotent by construction: each tick makes an attempt's stored lines the meter's answer from
launch to now (or to its end), so a tick that runs twice, or late, never double-counts. Only
what changed is written: a line is known by (attempt, start, rule), a running attempt's open
interval and its disk line are updated in place (their end, seconds and amount move), closed
price intervals are left as they are, new ones inserted, lines the answer lost deleted. The
job's total is then the exact sum of its lines. An attempt that ended is metered once more up to
its end, then left alone.

Prices (every line names its source):
- AWS spot: DescribeSpotPriceHistory for all live (type, zone) pairs in one paginated call,
  cached PRICE_TTL_S per pair; the price in force over each interval is applied.
- AWS on-demand, and spot without a history: the approved option's price recorded on the attempt.
- local: the rate recorded at launch (TRAINOPS_LOCAL_PRICE_PER_HOUR).
Disk: AWS attempts carry their 200 GB gp3 root volume (LaunchRequest.disk_gb).
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import select

from schemas.db.database import Database
from schemas.db.tables import Attempt, Job, SpendEntry
from schemas.spec import utcnow
from schemas.status import MACHINE_STATUSES
from workers.providers.base import LaunchRequest
from workers.rules.billing import (
    GP3_USD_PER_GB_MONTH,
    SECONDS_PER_BILLING_MONTH,
    PricePoint,
    SpendLine,
    meter_attempt,
    price_at,
    total,
)

log = logging.getLogger(__name__)
PRICE_TTL_S = 120.0  # spot prices change at most every few minutes
RECENT = timedelta(hours=6)  # ended attempts younger than this may still need their last line
AWS_DISK_GB = LaunchRequest.__dataclass_fields__["disk_gb"].default

_history: dict[tuple[str, str], tuple[float, datetime, list[PricePoint]]] = {}


def _fixed(attempt: Attempt) -> list[PricePoint]:
    price = attempt.hourly_usd if attempt.hourly_usd is not None else Decimal(0)
    source = {"local": "the local rate (TRAINOPS_LOCAL_PRICE_PER_HOUR)",
              "on-demand": "on-demand (the approved option's price)",
              "spot": f"spot {attempt.zone or ''} (the quoted price; no history)".replace("  ", " ")
              }.get(attempt.market or "", f"{attempt.market} (recorded at launch)")
    return [PricePoint(attempt.launched_at, price, source)]


def spot_prices(attempts: list[Attempt], providers: dict) -> dict[int, list[PricePoint]]:
    """Price history for the AWS spot attempts: one call for every stale (type, zone) pair."""
    now = time.monotonic()
    wanted = {(a.instance_type, a.zone): a.launched_at for a in attempts
              if a.provider == "aws" and a.market == "spot" and a.zone and a.instance_type}
    for a in attempts:
        key = (a.instance_type, a.zone)
        if key in wanted:
            wanted[key] = min(wanted[key], a.launched_at)
    stale = {k: since for k, since in wanted.items()
             if k not in _history or now - _history[k][0] > PRICE_TTL_S or _history[k][1] > since}
    if stale and "aws" in providers and hasattr(providers["aws"], "spot_price_history"):
        since = min(stale.values()) - timedelta(minutes=5)
        try:
            found = providers["aws"].spot_price_history(stale.keys(), since)
        except Exception:  # noqa: BLE001 - metered at the quoted price until the next read
            log.exception("spot price history unavailable; metering at the quoted price")
            found = {}
        for key, points in found.items():
            _history[key] = (now, since, [PricePoint(at, price, f"spot {key[1]} (price history)")
                                          for at, price in points])
    out = {}
    for a in attempts:
        cached = _history.get((a.instance_type, a.zone))
        if a.id in out or cached is None or not cached[2]:
            continue
        out[a.id] = cached[2]
    return out


def to_attempt_meter(db: Database, now: datetime) -> list[Attempt]:
    """Live attempts of jobs that may have a machine, and ended attempts not metered to their end."""
    with db.session() as s:
        rows = s.exec(
            select(Attempt, Job.status).join(Job, Job.id == Attempt.job_id)
            .where(Attempt.launched_at.is_not(None),
                   sa.or_(Attempt.ended_at.is_(None), Attempt.ended_at > now - RECENT))).all()
        ended_ids = [a.id for a, _ in rows if a.ended_at is not None]
        metered_to = dict(s.exec(
            select(SpendEntry.attempt_id, sa.func.max(SpendEntry.interval_end))
            .where(SpendEntry.attempt_id.in_(ended_ids)).group_by(SpendEntry.attempt_id)
        ).all()) if ended_ids else {}
    out = []
    for attempt, status in rows:
        if attempt.ended_at is None:
            if status in {x.value for x in MACHINE_STATUSES}:
                out.append(attempt)
        else:
            done = metered_to.get(attempt.id)
            if done is None or _aware(done) < attempt.ended_at:
                out.append(attempt)
    return out


def _aware(value) -> datetime:
    from schemas.db.tables import UTCDateTime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return UTCDateTime().process_result_value(value, None)


def meter(db: Database, providers: dict, now: datetime) -> dict[str, tuple[Decimal, Decimal]]:
    """Meter every attempt that needs it; returns {job_id: (spend_usd, usd_per_hour now)} for
    the jobs touched (the price is the live attempt's, 0 when none is live)."""
    attempts = to_attempt_meter(db, now)
    if not attempts:
        return {}
    history = spot_prices(attempts, providers)
    lines: dict[int, list[SpendLine]] = {}
    used: dict[int, list[PricePoint]] = {}
    rates: dict[str, Decimal] = defaultdict(Decimal)
    for a in attempts:
        prices = used[a.id] = sorted(history.get(a.id) or _fixed(a), key=lambda p: p.at)
        disk = AWS_DISK_GB if a.provider == "aws" else 0
        lines[a.id] = meter_attempt(a.launched_at, a.ended_at or now, prices, disk_gb=disk)
        if a.ended_at is None:
            rates[a.job_id] += _rate_now(prices, now, disk)
    by_attempt = {a.id: a for a in attempts}
    wanted = {(aid, line.start, _rule_key(line.rule)): _row(by_attempt[aid], line, used[aid])
              for aid, ls in lines.items() for line in ls}
    jobs = sorted({a.job_id for a in attempts})
    with db.session() as s:
        stored = s.exec(select(*_STORED).where(SpendEntry.attempt_id.in_(list(lines)))).all()
        inserts, updates, deletes = _changes(stored, wanted)
        if deletes:
            s.exec(sa.delete(SpendEntry).where(SpendEntry.id.in_(deletes))
                   .execution_options(synchronize_session=False))
        if updates:
            s.connection().execute(_UPDATE_LINE, updates)
        if inserts:
            s.exec(sa.insert(SpendEntry), params=inserts)
        # A job's total: this tick's lines of its metered attempts, plus the stored lines of
        # its other attempts (ended and metered to their end before), summed exactly.
        sums: dict[str, list[Decimal]] = defaultdict(list)
        for row in wanted.values():
            sums[row["job_id"]].append(row["amount_usd"])
        for job_id, amount in s.exec(
                select(SpendEntry.job_id, SpendEntry.amount_usd)
                .where(SpendEntry.job_id.in_(jobs), sa.or_(
                    SpendEntry.attempt_id.is_(None), SpendEntry.attempt_id.not_in(list(lines))))
        ).all():
            sums[job_id].append(amount)
        before = dict(s.exec(select(Job.id, Job.spend_usd).where(Job.id.in_(jobs))).all())
        out = {}
        for job_id in jobs:
            spent = sum(sums[job_id], Decimal(0)).quantize(Decimal("0.000001"))
            out[job_id] = (spent, rates.get(job_id, Decimal(0)))
        changed = [{"jid": j, "spent": v[0]} for j, v in out.items() if before.get(j) != v[0]]
        if changed:
            s.connection().execute(
                sa.update(Job.__table__).where(Job.__table__.c.id == sa.bindparam("jid"))
                .values(spend_usd=sa.bindparam("spent")), changed)
    return out


# What a stored line is compared on: its key (attempt, start, rule) and the values a tick can
# change (a running interval's end, seconds and amount; a price source revised; the top-up's
# rule, which names the seconds run).
_STORED = (SpendEntry.id, SpendEntry.attempt_id, SpendEntry.interval_start, SpendEntry.rule,
           SpendEntry.interval_end, SpendEntry.billed_seconds, SpendEntry.price_usd_per_hour,
           SpendEntry.amount_usd, SpendEntry.price_source)
_VALUES = ("interval_end", "billed_seconds", "price_usd_per_hour", "amount_usd", "price_source",
           "rule")
_RAN = re.compile(r" \(\d+ s ran\)$")


def _rule_key(rule: str) -> str:
    """A line's rule without what a tick changes: the minimum's top-up says how long the start
    has run ("60 s minimum per start (12 s ran)"), and is one line that shrinks, not a new one."""
    return _RAN.sub("", rule)


_T = SpendEntry.__table__
_UPDATE_LINE = (sa.update(_T).where(_T.c.id == sa.bindparam("line_id"))
                .values(**{name: sa.bindparam(f"new_{name}") for name in (*_VALUES, "created_at")}))


def _changes(stored, wanted: dict[tuple, dict]) -> tuple[list[dict], list[dict], list[int]]:
    """The writes that make the stored lines the meter's answer: (rows to insert, updates by id,
    ids to delete). A line whose values did not change is not written; a line the answer no
    longer has (the minimum's top-up after the first minute, a revised price history), or a
    second copy of one (two monitors that inserted the same new line), is deleted."""
    inserts, updates, deletes, seen = [], [], [], set()
    for row in stored:
        key = (row.attempt_id, _aware(row.interval_start), _rule_key(row.rule))
        want = wanted.get(key)
        if want is None or key in seen:
            deletes.append(row.id)
            continue
        seen.add(key)
        have = {name: getattr(row, name) for name in _VALUES}
        have["interval_end"] = _aware(row.interval_end)
        if have != {name: want[name] for name in _VALUES}:
            updates.append({"line_id": row.id, "new_created_at": want["created_at"],
                            **{f"new_{name}": want[name] for name in _VALUES}})
    inserts = [row for key, row in wanted.items() if key not in seen]
    return inserts, updates, deletes


def spend_lines(db: Database, job_id: str) -> list[dict]:
    """A job's spend, line by line, as plain values (for `trainops status --json`)."""
    with db.session() as s:
        rows = s.exec(select(SpendEntry, Attempt.attempt)
                      .join(Attempt, Attempt.id == SpendEntry.attempt_id, isouter=True)
                      .where(SpendEntry.job_id == job_id)
                      .order_by(SpendEntry.attempt_id, SpendEntry.interval_start)).all()
    return [{"attempt": n, "start": e.interval_start.isoformat(), "end": e.interval_end.isoformat(),
             "billed_seconds": e.billed_seconds, "usd_per_hour": str(e.price_usd_per_hour),
             "amount_usd": str(e.amount_usd), "rule": e.rule, "price_source": e.price_source}
            for e, n in rows]


def _rate_now(prices: list[PricePoint], now: datetime, disk_gb: int) -> Decimal:
    disk = Decimal(disk_gb) * GP3_USD_PER_GB_MONTH * Decimal(3600) / SECONDS_PER_BILLING_MONTH
    return price_at(sorted(prices, key=lambda p: p.at), now).usd_per_hour + disk


def _row(attempt: Attempt, line: SpendLine, prices: list[PricePoint]) -> dict:
    if line.rule.startswith("gp3"):
        source = "EBS gp3 price (AWS, us-east-1)"
    else:
        source = price_at(prices, line.start).source
    return {"job_id": attempt.job_id, "attempt_id": attempt.id, "interval_start": line.start,
            "interval_end": line.end, "billed_seconds": int(line.billed_s.to_integral_value()),
            "price_usd_per_hour": line.usd_per_hour, "amount_usd": line.amount_usd,
            "rule": line.rule, "price_source": source[:128], "created_at": utcnow()}


__all__ = ["meter", "spot_prices", "total", "PRICE_TTL_S"]
