"""The cap guard and the progress message in the monitor tick (adapters around workers/rules/cap.py
and workers/rules/cards.py).

For every job with a machine (running or stopping), each tick:
1. decide(): WARN posts the warning once per cap (jobs.warned_at_cap); STOP sets control.json
   stop=true and moves the job to stopping (stop_reason "cap"); TERMINATE ends a stop that took
   longer than STOP_GRACE: the machine is terminated, whatever the agent does.
2. the agent's money deadline is recomputed from what is left and the price now, and written to
   control.json when it moved (workers/monitor/control.py), so the cap holds with the monitor down.
   In a tick the writes of all jobs go out together after the guard loop, in parallel; a stop is
   still recorded in the database before its own control.json write (_stop), so no store fault
   keeps the forced terminate from firing.
3. the progress sample is kept (progress_samples) and the progress card posted or updated at most
   every TRAINOPS_PROGRESS_EVERY seconds (default 180), or at once when the phase changes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from schemas.db.tables import Attempt, Job, ProgressSample
from schemas.job import Progress
from schemas.status import JobStatus
from schemas.store import Store
from workers.monitor import control
from workers.notify import Notifier, safe_event, safe_notify
from workers.rules.billing import MIN_BILLED_S
from workers.rules.cap import Action, Meter, deadline, decide, projected_final
from workers.rules.cards import ProgressCard, RunLine, WarningCard
from workers.state.records import add_event, claim, load_view

log = logging.getLogger(__name__)
S = JobStatus


def guard_job(db, store: Store, notifier: Notifier, provider, job_id: str, attempt: Attempt,
              price: Decimal, progress: Progress | None, now: datetime, tick_s: float,
              job: Job | None = None, deadlines: list | None = None) -> list[str]:
    """Apply the guard to one job; returns the actions taken (for the tick's counts and tests).
    `job`: the tick's copy read after metering (one query for all jobs), else read here.
    `deadlines`: the tick's list of control.json deadline writes, sent together after the
    guard loop (control.write_deadlines); without it the deadline is written here."""
    if job is None:
        with db.session() as s:
            job = s.get(Job, job_id)
    if job is None or job.status not in (S.running, S.stopping):
        return []
    eta = progress.eta_s if progress is not None and progress.attempt == attempt.attempt else None
    projected = projected_final(job.spend_usd, price, eta)
    decision = decide(Meter(now=now, spent_usd=job.spend_usd, cap_usd=job.cap_usd,
                            warn_fraction=Decimal(str(job.warn)), usd_per_hour=price,
                            tick_s=tick_s, projected_final_usd=projected,
                            warned_at_cap=job.warned_at_cap,
                            stop_requested_at=job.stop_requested_at))
    done = []
    reason = "; ".join(decision.reasons)
    for action in decision.actions:
        if action == Action.WARN and _warn(db, notifier, job, projected, reason):
            done.append("warn")
        elif action == Action.STOP and _stop(db, store, notifier, job, now, reason):
            done.append("stop")
        elif action == Action.TERMINATE and _terminate(db, notifier, provider, job, attempt,
                                                       reason):
            done.append("terminate")
    if job.status == S.running and "stop" not in done:
        # The agent of this attempt is alive (its progress.json): it reads control.json
        # within seconds, so a write now starts its countdown on time (control.py).
        alive = attempt.attempt if progress is not None and progress.attempt == attempt.attempt \
            else None
        write = (job_id, agent_deadline(job, attempt, price, now, tick_s), job.cap_usd, alive)
        if deadlines is not None:
            deadlines.append(write)
        else:
            control.write_deadline(store, *write)
    elif job.status == S.stopping and not done:
        tell_agent_to_stop(store, job_id)  # again: an earlier write may have failed
    return done


def agent_deadline(job: Job, attempt: Attempt, price: Decimal, now: datetime,
                   tick_s: float) -> datetime | None:
    """The deadline the monitor writes: the money runs out at the price now, counted from the
    end of the prepaid minute, less two ticks (the agent keeps its own margin for the final
    checkpoint). With the monitor alive its STOP comes first; with it gone, the agent stops
    within a tick or two of the cap (at most about a minute of billing at the default tick)."""
    paid = attempt.launched_at + timedelta(seconds=MIN_BILLED_S) if attempt.launched_at else None
    return deadline(now, job.spend_usd, job.cap_usd, price, paid_until=paid,
                    reserve=timedelta(seconds=2 * tick_s))


def _warn(db, notifier, job: Job, projected: Decimal | None, reason: str) -> bool:
    with db.session() as s:  # once per cap, even with two monitors racing
        won = s.exec(sa.update(Job).where(Job.id == job.id, sa.or_(
            Job.warned_at_cap.is_(None), Job.warned_at_cap != job.cap_usd))
            .values(warned_at_cap=job.cap_usd)
            .execution_options(synchronize_session=False)).rowcount == 1
        if won:
            add_event(s, job.id, "warning", "monitor", reason)
            view = load_view(s, s.get(Job, job.id, populate_existing=True))
    if won:
        safe_notify(notifier, view, "warning", WarningCard(
            job_id=job.id, requester=job.requester, spent_usd=job.spend_usd,
            cap_usd=job.cap_usd, projected_final_usd=projected, reason=reason))
    return won


def _stop(db, store, notifier, job: Job, now: datetime, reason: str) -> bool:
    # The database first: once stop_requested_at is set, the forced terminate fires
    # STOP_GRACE later whatever the store does. Then tell the agent (best effort: a store fault
    # must not undo the stop; the next ticks say it again while the job is stopping).
    with db.session() as s:
        if job.status == S.running:
            won = claim(s, job.id, S.running, S.stopping, stop_reason="cap", stop_requested_at=now)
        else:
            won = s.exec(sa.update(Job).where(Job.id == job.id, Job.stop_requested_at.is_(None))
                         .values(stop_requested_at=now)
                         .execution_options(synchronize_session=False)).rowcount == 1
        if won:
            add_event(s, job.id, "stopping", "monitor",
                      f"cap: {reason}; asked the agent to checkpoint and stop")
            view = load_view(s, s.get(Job, job.id, populate_existing=True))
    tell_agent_to_stop(store, job.id)
    if won:
        safe_event(notifier, view, "stopping", f"spent ${job.spend_usd:.2f} of the "
                   f"${job.cap_usd:.2f} cap: checkpointing, then stopping")
    return won


def tell_agent_to_stop(store, job_id: str) -> bool:
    """control.json stop=true, best effort: False (and a log line) when the store fails."""
    try:
        control.update_control(store, job_id, stop=True)
        return True
    except Exception:  # noqa: BLE001 - the terminate after STOP_GRACE does not depend on it
        log.warning("could not write the stop into control.json of %s; the machine is "
                    "terminated after the stop grace anyway", job_id, exc_info=True)
        return False


def _terminate(db, notifier, provider, job: Job, attempt: Attempt, reason: str) -> bool:
    try:
        provider.terminate([attempt.instance_id])
    except Exception:  # noqa: BLE001 - the next tick tries again; the reaper after that
        log.exception("could not terminate %s of %s", attempt.instance_id, job.id)
        return False
    target = S.stopped_at_cap if job.stop_reason == "cap" else S.cancelled
    from schemas.spec import utcnow

    with db.session() as s:
        won = claim(s, job.id, S.stopping, target)
        if won:
            s.exec(sa.update(Attempt).where(Attempt.id == attempt.id, Attempt.ended_at.is_(None))
                   .values(ended_at=utcnow(), end_reason="terminated after the stop grace"))
            add_event(s, job.id, target.value, "monitor", f"terminated: {reason}")
            view = load_view(s, s.get(Job, job.id, populate_existing=True))
    if won:
        safe_event(notifier, view, target.value, f"terminated {attempt.instance_id}: {reason}")
    return won


def sample_progress(db, rows: list[tuple[str, Attempt, Progress, Decimal]], now: datetime) -> None:
    """One sample per job with a fresh progress.json this tick: the final chart's points."""
    params = [{"job_id": job_id, "attempt": attempt.attempt, "at": now, "step": p.step,
               "total_steps": p.total_steps, "loss": p.loss, "tokens_seen": p.tokens_seen,
               "tokens_per_s": p.tokens_per_s if p.phase == "train" else 0.0, "spend_usd": spent}
              for job_id, attempt, p, spent in rows]
    if params:
        with db.session() as s:
            s.exec(sa.insert(ProgressSample), params=params)


def post_progress(db, notifier: Notifier, job_id: str, attempt: Attempt, p: Progress,
                  price: Decimal, now: datetime, every_s: float, job: Job | None = None) -> bool:
    """Post or update the job's progress card when it is due; keep the ref it returns.
    `job`: the tick's fresh copy; when it says the card is not due, nothing is read."""
    if job is not None and job.progress_at is not None and job.progress_phase == p.phase[:16] \
            and (now - job.progress_at).total_seconds() < every_s:
        return False
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.status not in (S.running, S.stopping):
            return False
        due = (job.progress_at is None or job.progress_phase != p.phase
               or (now - job.progress_at).total_seconds() >= every_s)
        if not due:
            return False
        view = load_view(s, job)
    card = ProgressCard(
        job_id=job_id, step=p.step, total_steps=p.total_steps, loss=p.loss,
        tokens_per_s=p.tokens_per_s, eta_s=p.eta_s, spent_usd=job.spend_usd,
        cap_usd=job.cap_usd, warn_usd=(job.cap_usd * Decimal(str(job.warn))).quantize(
            Decimal("0.01")), projected_final_usd=projected_final(job.spend_usd, price, p.eta_s),
        instance_type=attempt.instance_type, market=attempt.market, attempt=attempt.attempt,
        phase=p.phase, updated_at=now, stage=p.stage,
        runs=tuple(RunLine.of(r) for r in p.runs))
    ref = safe_notify(notifier, view, "progress", card, job.progress_ref)
    with db.session() as s:
        s.exec(sa.update(Job).where(Job.id == job_id)
               .values(progress_ref=ref or job.progress_ref, progress_at=now,
                       progress_phase=p.phase[:16])
               .execution_options(synchronize_session=False))
    return True
