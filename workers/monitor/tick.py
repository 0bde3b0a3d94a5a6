"""The monitor's tick: look at every live attempt at once, apply what the agents and the
machines say, and pick up jobs a lost message left behind.

Reads, sized for 1,000 live jobs in under 2 s:
- machines: their states from DescribeInstanceStatus (100 ids a call, in parallel; a few fields
  per machine), and DescribeInstances — one call per 1,000 — only for the machines neither
  pending nor running, whose stop reason tells a spot interruption (AwsProvider.describe_states);
- the agents' words: one listing of the store's heartbeats/ folder (the agents' copies of their
  progress.json and status.json; ListObjectsV2 gives every key's ETag, 1,000 a page), then GETs,
  in parallel, of only the documents whose ETag changed since this process last read them
  (workers/monitor/reads.py; on a file:// store the version is inode+mtime_ns+size). Quiet jobs
  cost nothing; a document an agent rewrote is read in the tick that lists it, so a changed
  progress or status is seen within one tick. Jobs whose agent writes no copies are read the
  old way, both documents each tick.
The two reads run at the same time. benchmarks/monitor_bench.py measures a tick over 1,000 jobs
with its calls (benchmarks/RESULTS.md).

After the moves, one module a step: metering (spend.py), the cap guard, the agent's deadline and
the progress card (cap.py; every guarded job is read once, in one query, not twice a job; the
deadlines that changed are written to control.json together, in parallel, control.py),
recovery of the jobs interrupted (interruptions.py), and the final report of the jobs that ended
(endings.py). Each step is idempotent, so a tick that runs twice, or a worker that dies
mid-tick, leaves nothing half done that the next tick does not finish.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import select

from schemas.db.database import Database
from schemas.db.tables import Attempt, Event, Job
from schemas.job import AgentStatus, Progress
from schemas.settings import Settings
from schemas.spec import TrainRequest, utcnow
from schemas.status import MACHINE_STATUSES, JobStatus
from schemas.store import open_store
from workers.monitor import cap, control, endings, interruptions, memo, reads, spend
from workers.notify import Notifier, safe_event
from workers.providers import get_provider
from workers.providers.base import Provider
from workers.rules.lifecycle import Move, observe
from workers.state.records import add_event, claim, load_view

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
    """status.json and progress.json of each job, reading only what changed (reads.py)."""
    return reads.read_docs(store, job_ids)


def renew_credentials(providers: dict[str, Provider], rows, machines, now) -> None:
    """The per-job store credentials of the machines that are up, renewed when due; those of
    machines gone, withdrawn (workers/providers/aws_credentials.py). Providers without them
    have no `renew_credentials`."""
    live: dict[str, list] = defaultdict(list)
    for attempt, job in rows:
        machine = machines.get(attempt.instance_id)
        if machine is not None and machine.live:
            live[attempt.provider].append((job.id, attempt.attempt, attempt.instance_id))
    for name, provider in providers.items():
        renew = getattr(provider, "renew_credentials", None)
        if renew is None:
            continue
        try:
            renew(live.get(name, []), now)
        except Exception:  # noqa: BLE001 - retried next tick; the agent's last ones still hold
            log.exception("renewing per-job credentials on %s failed", name)


def tick(db: Database, settings: Settings, notifier: Notifier,
         providers: dict[str, Provider] | None = None, enqueue=None) -> dict[str, int]:
    providers = dict(providers or {})
    store = open_store(settings.store)
    memo.warm(store)  # a restarted worker starts from what the last tick knew
    now = utcnow()
    rows = live_attempts(db)
    by_provider: dict[str, list[str]] = defaultdict(list)
    for attempt, _job in rows:
        by_provider[attempt.provider].append(attempt.instance_id)
    machines = {}
    # The store and the cloud are read at the same time: two independent sets of round trips.
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(read_docs, store, [job.id for _, job in rows])
        for name, ids in by_provider.items():
            provider = providers.setdefault(name, get_provider(name, settings))
            # The states only where the provider offers it (AWS: DescribeInstanceStatus; the
            # full DescribeInstances, one call per 1,000, only for machines neither pending nor
            # running).
            describe = getattr(provider, "describe_states", None) or provider.describe
            machines.update(describe(ids))
        docs = reading.result()
    renew_credentials(providers, rows, machines, now)
    moved, interrupted = set(), []
    for attempt, job in rows:
        agent = docs[job.id][0]
        machine = machines.get(attempt.instance_id)
        move = observe(S(job.status), attempt.attempt, machine, agent, job.stop_reason)
        if move is not None and apply(db, job, attempt, move, providers[attempt.provider],
                                      notifier, ended_at=ended_at(attempt, machine, agent, now)):
            moved.add(job.id)
            if move.target == S.interrupted:
                interrupted.append(job.id)
    for name in ("local", settings.provider):
        providers.setdefault(name, get_provider(name, settings))
    metered = spend.meter(db, providers, now)
    counts = {"warn": 0, "stop": 0, "terminate": 0, "progress": 0}
    samples, deadlines = [], []
    # Every guarded job read once, after metering wrote its spend (one query, not two a job).
    fresh = load_jobs(db, [job.id for _, job in rows if job.id not in moved])
    for attempt, job in rows:
        if job.id in moved:
            continue
        spent, price = metered.get(job.id, (job.spend_usd, attempt.hourly_usd or Decimal(0)))
        progress = docs[job.id][1]
        try:
            actions = cap.guard_job(db, store, notifier, providers[attempt.provider], job.id,
                                    attempt, price, progress, now, settings.monitor_interval_s,
                                    job=fresh.get(job.id), deadlines=deadlines)
            for action in actions:
                counts[action] += 1
            if progress is not None and progress.attempt == attempt.attempt:
                samples.append((job.id, attempt, progress, spent))
                counts["progress"] += cap.post_progress(
                    db, notifier, job.id, attempt, progress, price, now,
                    settings.progress_every_s, job=None if actions else fresh.get(job.id))
        except Exception:  # noqa: BLE001 - one job's trouble must not stop the others' guard
            log.exception("guarding %s failed", job.id)
    # The agents' deadlines, those that changed or are due a refresh, written together.
    counts["deadlines"] = control.write_deadlines(store, deadlines)
    memo.keep(store, [job.id for _, job in rows])
    cap.sample_progress(db, samples, now)
    recovered = 0
    for job_id in interrupted + undecided_interruptions(db, exclude=set(interrupted)):
        try:
            interruptions.handle(db, settings, notifier, job_id, _zones(db, job_id, providers),
                              enqueue)
            recovered += 1
        except Exception:  # noqa: BLE001 - the job stays interrupted; the next tick retries
            log.exception("recovering %s failed", job_id)
    reported = 0
    for job_id in endings.due(db):
        try:
            reported += endings.finish(db, store, notifier, job_id) is not None
        except Exception:  # noqa: BLE001 - reported_at is claimed: logged, never retried
            log.exception("the final report of %s failed", job_id)
    requeued = requeue_stuck(db, enqueue)
    return {"attempts": len(rows), "moved": len(moved), "requeued": requeued,
            "metered": len(metered), "recovering": recovered, "reported": reported, **counts}


def load_jobs(db: Database, ids: list[str], chunk: int = 500) -> dict[str, Job]:
    out: dict[str, Job] = {}
    with db.session() as s:
        for start in range(0, len(ids), chunk):
            out.update((j.id, j) for j in s.exec(select(Job).where(
                Job.id.in_(ids[start:start + chunk]))).all())
    return out


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


def ended_at(attempt: Attempt, machine, agent: AgentStatus | None, now):
    """When the attempt really ended, for the meter: the machine's own stop time (EC2's state
    transition, the local process's exit), or the agent's last status if that is earlier; now
    only when neither is known (the machine still up: it is terminated now). Never before the
    launch, never after now: a monitor or Redis outage does not bill the gap."""
    known = []
    if machine is not None and not machine.live and machine.stopped_at is not None:
        known.append(machine.stopped_at)
    if agent is not None and agent.attempt == attempt.attempt and agent.at is not None:
        at = agent.at if agent.at.tzinfo else agent.at.replace(tzinfo=now.tzinfo)
        if machine is None or not machine.live:
            known.append(at)
    if not known:
        return now
    end = min(min(known), now)
    launched = attempt.launched_at
    if launched is not None:
        launched = launched if launched.tzinfo else launched.replace(tzinfo=now.tzinfo)
        end = max(end, launched)
    return end


def apply(db: Database, job: Job, attempt: Attempt, move: Move, provider: Provider,
          notifier: Notifier, ended_at=None) -> bool:
    with db.session() as s:
        values = {"failure_cause": move.cause.value} if move.cause else {}
        if not claim(s, job.id, job.status, move.target, **values):
            return False
        if move.end_reason:
            s.exec(sa.update(Attempt).where(Attempt.id == attempt.id,
                                            Attempt.ended_at.is_(None))
                   .values(ended_at=ended_at or utcnow(), end_reason=move.end_reason))
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
