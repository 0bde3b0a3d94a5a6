"""The reaper: machines tagged trainops:job that no live attempt owns are terminated and
reported in their job's event log.

This is what makes a worker killed between run_instances and its database write harmless: the
machine carries the job's tag, so it is found here even though no row points at it. A machine
of a job that is still provisioning is left alone for a grace period, since the provision task
(or its redelivery) is about to record or adopt it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlmodel import select

from schemas.db.database import Database
from schemas.db.tables import Attempt, Job
from schemas.spec import utcnow
from schemas.status import MACHINE_STATUSES, JobStatus
from workers.notify import Notifier, safe_event
from workers.providers.base import REAPABLE_STATES, Machine, Provider
from workers.state.records import add_event, load_view

log = logging.getLogger(__name__)
PROVISIONING_GRACE = timedelta(minutes=15)


def is_orphan(machine: Machine, job: Job | None, owned_ids: set[str], now) -> bool:
    """Pure: does nobody own this machine?"""
    if machine.state not in REAPABLE_STATES or machine.instance_id in owned_ids:
        return False
    if job is None or JobStatus(job.status) not in MACHINE_STATUSES:
        return True
    if job.status in (JobStatus.provisioning, JobStatus.approved):
        launched = machine.launched_at
        return launched is not None and now - launched > PROVISIONING_GRACE
    return True


def reap(db: Database, provider: Provider, notifier: Notifier | None) -> list[str]:
    now = utcnow()
    machines = provider.list_tagged()
    if not machines:
        return []
    job_ids = {m.job_id for m in machines if m.job_id}
    with db.session() as s:
        jobs = {j.id: j for j in s.exec(select(Job).where(Job.id.in_(job_ids))).all()}
        owned = set(s.exec(select(Attempt.instance_id).join(Job, Job.id == Attempt.job_id).where(
            Attempt.ended_at.is_(None), Attempt.instance_id.is_not(None),
            Job.status.in_([x.value for x in MACHINE_STATUSES]))).all())
    orphans = [m for m in machines if is_orphan(m, jobs.get(m.job_id), owned, now)]
    if not orphans:
        return []
    provider.terminate([m.instance_id for m in orphans])
    for m in orphans:
        job = jobs.get(m.job_id)
        log.warning("reaped %s (job %s, attempt %s)", m.instance_id, m.job_id, m.attempt)
        if job is None:
            continue
        text = (f"terminated orphan {m.instance_id} ({m.instance_type}, attempt {m.attempt}): "
                f"no live attempt owns it while the job is {job.status}")
        with db.session() as s:
            add_event(s, job.id, "reaped", "worker", text)
            view = load_view(s, s.get(Job, job.id, populate_existing=True))
        if notifier is not None:
            safe_event(notifier, view, "reaped", text)
        try:
            meter_orphan(db, provider, m, utcnow())
        except Exception:  # noqa: BLE001 - reaped either way; the money is in the log
            log.exception("could not meter orphan %s of %s", m.instance_id, m.job_id)
    return [m.instance_id for m in orphans]


def meter_orphan(db: Database, provider: Provider, m: Machine, now) -> None:
    """An orphan ran on the job's money: give it an ended attempt row (the crashed launch's own
    row when it is still empty, else a new one) so the meter bills it from its launch to its
    end like any other machine (security #14)."""
    import sqlalchemy as sa

    hourly = provider.hourly_usd(m.instance_type or "", m.market or "", 0.0)
    values = dict(instance_id=m.instance_id, instance_type=m.instance_type, zone=m.zone,
                  market=m.market, hourly_usd=hourly, launched_at=m.launched_at or now,
                  ended_at=m.stopped_at or now, end_reason="orphan reaped")
    with db.session() as s:
        rows = s.exec(select(Attempt).where(Attempt.job_id == m.job_id)).all()
        if any(a.instance_id == m.instance_id for a in rows):
            return
        empty = next((a for a in rows if a.attempt == m.attempt and a.instance_id is None), None)
        if empty is not None:
            s.exec(sa.update(Attempt).where(Attempt.id == empty.id).values(**values))
            return
        number = max((a.attempt for a in rows), default=0) + 1
        s.add(Attempt(job_id=m.job_id, attempt=number, provider=provider.name, **values))
