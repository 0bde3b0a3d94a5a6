"""The monitor's tick: look at every live attempt at once, apply what the agents and the
machines say, and pick up jobs a lost message left behind.

One DescribeInstances per 1,000 live AWS attempts (not one per job), then status.json for each.
Spend metering and the cap guard (workers/meter.py, workers/guard.py) plug in after `observe`:
they need the same attempts and machines this tick has already loaded (see `tick`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import select

from schemas.db import Database
from schemas.settings import Settings
from schemas.spec import AgentStatus, utcnow
from schemas.status import MACHINE_STATUSES, JobStatus
from schemas.store import job_prefix, open_store, read_model
from schemas.tables import Attempt, Job
from workers.lifecycle import Move, observe
from workers.notify import Notifier, safe_event
from workers.providers import get_provider
from workers.providers.base import Provider
from workers.records import add_event, claim, load_view

log = logging.getLogger(__name__)
S = JobStatus
STUCK_APPROVED = timedelta(seconds=60)


def live_attempts(db: Database) -> list[tuple[Attempt, Job]]:
    with db.session() as s:
        rows = s.exec(
            select(Attempt, Job).join(Job, Job.id == Attempt.job_id)
            .where(Attempt.ended_at.is_(None), Attempt.instance_id.is_not(None),
                   Job.status.in_([x.value for x in MACHINE_STATUSES]))
        ).all()
    return list(rows)


def tick(db: Database, settings: Settings, notifier: Notifier,
         providers: dict[str, Provider] | None = None, enqueue=None) -> dict[str, int]:
    providers = dict(providers or {})
    store = open_store(settings.store)
    rows = live_attempts(db)
    by_provider: dict[str, list[str]] = defaultdict(list)
    for attempt, _job in rows:
        by_provider[attempt.provider].append(attempt.instance_id)
    machines = {}
    for name, ids in by_provider.items():
        provider = providers.setdefault(name, get_provider(name, settings))
        machines.update(provider.describe(ids))  # batched: one call per 1,000 ids on AWS
    moved = 0
    for attempt, job in rows:
        agent = read_model(store, f"{job_prefix(job.id)}/status.json", AgentStatus)
        move = observe(S(job.status), attempt.attempt, machines.get(attempt.instance_id), agent,
                       job.stop_reason)
        if move is not None and apply(db, job, attempt, move, providers[attempt.provider],
                                      notifier):
            moved += 1
    # Metering and the cap guard go here, over the same `rows` and `machines` (a later issue).
    requeued = requeue_stuck(db, enqueue)
    return {"attempts": len(rows), "moved": moved, "requeued": requeued}


def apply(db: Database, job: Job, attempt: Attempt, move: Move, provider: Provider,
          notifier: Notifier) -> bool:
    with db.session() as s:
        values = {"failure_cause": move.cause.value} if move.cause else {}
        if not claim(s, job.id, job.status, move.target, **values):
            return False
        if move.end_reason:
            s.exec(sa.update(Attempt).where(Attempt.id == attempt.id,
                                            Attempt.ended_at.is_(None))
                   .values(ended_at=utcnow(), end_reason=move.end_reason))
        add_event(s, job.id, move.kind, "monitor", move.message)
        view = load_view(s, s.get(Job, job.id, populate_existing=True))
    if move.terminate and attempt.instance_id:
        try:  # the agent exits by itself; this makes sure the machine does too
            provider.terminate([attempt.instance_id])
        except Exception:  # noqa: BLE001 - the reaper retries what is left
            log.exception("could not terminate %s of %s", attempt.instance_id, job.id)
    safe_event(notifier, view, move.kind, move.message)
    return True


def requeue_stuck(db: Database, enqueue) -> int:
    """Jobs approved but never picked up (the broker was down when they were approved), and
    provisioning jobs whose worker died (lease expired): hand them to provision again."""
    if enqueue is None:
        return 0
    now = utcnow()
    with db.session() as s:
        ids = s.exec(select(Job.id).where(sa.or_(
            sa.and_(Job.status == S.approved.value, Job.updated_at < now - STUCK_APPROVED),
            sa.and_(Job.status == S.provisioning.value, sa.or_(
                Job.lease_until < now,
                sa.and_(Job.lease_until.is_(None), Job.updated_at < now - STUCK_APPROVED))),
        ))).all()
    for job_id in ids:
        enqueue(job_id)
    return len(ids)
