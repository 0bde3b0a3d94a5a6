"""The monitor's tick: look at every live attempt at once, apply what the agents and the
machines say, and pick up jobs a lost message left behind.

One DescribeInstances per 1,000 live AWS attempts (not one per job), then status.json and
progress.json for each (read in parallel). After the moves: metering (workers/metering.py), the
cap guard, the agent's deadline and the progress card (workers/guarding.py), recovery of the
jobs interrupted (workers/recovering.py), and the final report of the jobs that ended
(workers/finishing.py). Each step is idempotent, so a tick that runs twice, or a worker that
dies mid-tick, leaves nothing half done that the next tick does not finish.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import select

from schemas.db import Database
from schemas.settings import Settings
from schemas.spec import AgentStatus, Progress, TrainRequest, utcnow
from schemas.status import MACHINE_STATUSES, JobStatus
from schemas.store import job_prefix, open_store, read_model
from schemas.tables import Attempt, Event, Job
from workers import finishing, guarding, metering, recovering
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


def read_docs(store, job_ids: list[str]) -> dict[str, tuple[AgentStatus | None, Progress | None]]:
    """status.json and progress.json of each job; in parallel (S3 GETs are round trips)."""
    def one(job_id: str):
        prefix = job_prefix(job_id)
        out = []
        for name, model in (("status.json", AgentStatus), ("progress.json", Progress)):
            try:
                out.append(read_model(store, f"{prefix}/{name}", model))
            except Exception:  # noqa: BLE001 - a half-written or unreadable file: next tick
                log.warning("could not read %s of %s", name, job_id)
                out.append(None)
        return job_id, tuple(out)

    ids = sorted(set(job_ids))
    if len(ids) <= 4:
        return dict(map(one, ids))
    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(pool.map(one, ids))


def tick(db: Database, settings: Settings, notifier: Notifier,
         providers: dict[str, Provider] | None = None, enqueue=None) -> dict[str, int]:
    providers = dict(providers or {})
    store = open_store(settings.store)
    now = utcnow()
    rows = live_attempts(db)
    by_provider: dict[str, list[str]] = defaultdict(list)
    for attempt, _job in rows:
        by_provider[attempt.provider].append(attempt.instance_id)
    machines = {}
    for name, ids in by_provider.items():
        provider = providers.setdefault(name, get_provider(name, settings))
        machines.update(provider.describe(ids))  # batched: one call per 1,000 ids on AWS
    docs = read_docs(store, [job.id for _, job in rows])
    moved, interrupted = set(), []
    for attempt, job in rows:
        agent = docs[job.id][0]
        move = observe(S(job.status), attempt.attempt, machines.get(attempt.instance_id), agent,
                       job.stop_reason)
        if move is not None and apply(db, job, attempt, move, providers[attempt.provider],
                                      notifier):
            moved.add(job.id)
            if move.target == S.interrupted:
                interrupted.append(job.id)
    for name in ("local", settings.provider):
        providers.setdefault(name, get_provider(name, settings))
    spend = metering.meter(db, providers, now)
    counts = {"warn": 0, "stop": 0, "terminate": 0, "progress": 0}
    samples = []
    for attempt, job in rows:
        if job.id in moved:
            continue
        spent, price = spend.get(job.id, (job.spend_usd, attempt.hourly_usd or Decimal(0)))
        progress = docs[job.id][1]
        try:
            for action in guarding.guard_job(db, store, notifier, providers[attempt.provider],
                                             job.id, attempt, price, progress, now,
                                             settings.monitor_interval_s):
                counts[action] += 1
            if progress is not None and progress.attempt == attempt.attempt:
                samples.append((job.id, attempt, progress, spent))
                counts["progress"] += guarding.post_progress(db, notifier, job.id, attempt,
                                                             progress, price, now)
        except Exception:  # noqa: BLE001 - one job's trouble must not stop the others' guard
            log.exception("guarding %s failed", job.id)
    guarding.sample_progress(db, samples, now)
    recovered = 0
    for job_id in interrupted + undecided_interruptions(db, exclude=set(interrupted)):
        try:
            recovering.handle(db, settings, notifier, job_id, _zones(db, job_id, providers),
                              enqueue)
            recovered += 1
        except Exception:  # noqa: BLE001 - the job stays interrupted; the next tick retries
            log.exception("recovering %s failed", job_id)
    reported = 0
    for job_id in finishing.due(db):
        try:
            reported += finishing.finish(db, store, notifier, job_id) is not None
        except Exception:  # noqa: BLE001 - reported_at is claimed: logged, never retried
            log.exception("the final report of %s failed", job_id)
    requeued = requeue_stuck(db, enqueue)
    return {"attempts": len(rows), "moved": len(moved), "requeued": requeued,
            "metered": len(spend), "recovering": recovered, "reported": reported, **counts}


def undecided_interruptions(db: Database, exclude: set[str]) -> list[str]:
    """Interrupted jobs whose last event is still the interruption (a tick died before it
    decided): decide now. A job waiting on an `ask` has a later event and is left alone."""
    with db.session() as s:
        ids = s.exec(select(Job.id).where(Job.status == S.interrupted.value)).all()
        out = []
        for job_id in ids:
            if job_id in exclude:
                continue
            last = s.exec(select(Event.kind).where(Event.job_id == job_id)
                          .order_by(Event.id.desc())).first()
            if last == "interrupted":
                out.append(job_id)
    return out


def _zones(db: Database, job_id: str, providers: dict[str, Provider]) -> list[str]:
    with db.session() as s:
        job = s.get(Job, job_id)
    provider = providers.get(job.provider or "")
    if provider is None or not hasattr(provider, "region_zones"):
        return []
    region = TrainRequest.model_validate(job.request).region
    return [z for z in provider.region_zones(region) if z]


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
