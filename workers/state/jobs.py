"""The jobs service: open a job from a quote, decide on it, cancel it, read it back.

Used by the CLI, the Slack bot and the monitor; every function takes the Database first. Status
changes are claims (workers/state/records.py), so two clicks on Approve, or Approve racing Cancel,
leave exactly one winner, and the loser gets an Outcome saying what happened, not an exception.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

import sqlalchemy as sa
from sqlmodel import select

from schemas import tasks
from schemas.db.database import Database
from schemas.db.tables import Approval, Job, QuoteRecord
from schemas.spec import Quote, utcnow
from schemas.status import MACHINE_STATUSES, FailureCause, JobStatus
from workers.queue.enqueue import EnqueueFailed, enqueue
from workers.rules.budget import needs_approver_for_code, rule_on_approval, usd
from workers.state.records import JobView, add_event, claim, load_view, update_fields

__all__ = [
    "JobView", "Outcome", "open_job", "set_root_message", "decide", "cancel", "get_job",
    "list_jobs", "expire_quotes", "authorize", "refuse",
]

log = logging.getLogger(__name__)
S = JobStatus


@dataclass
class Outcome:
    ok: bool
    message: str
    job: JobView | None


def _new_id() -> str:
    return f"j-{secrets.token_hex(3)}"


def open_job(db: Database, quote: Quote, requester: str, channel: str | None = None, *,
             provider: str | None = None, ttl_h: float = 24.0) -> str:
    """A new job in awaiting_approval holding its quote; returns its id (e.g. "j-4f2a9c")."""
    request = quote.request
    now = utcnow()
    rank = None
    if quote.recommended is not None and quote.recommended in quote.options:
        rank = quote.options.index(quote.recommended)
    for _ in range(5):  # 16.7M ids: a clash is rare, and the primary key tells us
        job_id = _new_id()
        try:
            with db.session() as s:
                s.add(Job(
                    id=job_id, status=S.awaiting_approval.value, requester=requester,
                    channel=channel, text=request.text, request=request.model_dump(mode="json"),
                    provider=provider, budget_usd=usd(request.budget_usd),
                    cap_usd=usd(request.cap_usd), warn=request.warn, spend_usd=Decimal(0),
                    quote_expires_at=now + timedelta(hours=ttl_h), created_at=now,
                    updated_at=now,
                ))
                s.flush()
                s.add(QuoteRecord(
                    job_id=job_id, payload=quote.model_dump(mode="json"),
                    options=[o.model_dump(mode="json") for o in quote.options],
                    recommended_rank=rank, over_budget_usd=usd(quote.over_budget_usd),
                ))
                best = quote.recommended or next((o for o in quote.options if o.feasible), None)
                summary = (f"{best.instance_type} {best.market} ≈ ${best.cost_usd:.2f}"
                           if best else "no feasible option")
                add_event(s, job_id, "quoted", requester, f"quoted: {summary}")
            return job_id
        except sa.exc.IntegrityError:
            log.warning("job id %s already taken; drawing another", job_id)
    raise RuntimeError("could not draw a free job id in 5 tries")


def set_root_message(db: Database, job_id: str, channel: str, ts: str) -> None:
    with db.session() as s:
        update_fields(s, job_id, channel=channel, root_ts=ts)


def get_job(db: Database, job_id: str) -> JobView | None:
    with db.session() as s:
        job = s.get(Job, job_id)
        return load_view(s, job) if job is not None else None


def list_jobs(db: Database, *, live_only: bool = False, limit: int = 20,
              requester: str | None = None) -> list[JobView]:
    """Newest first; `requester`: only that person's jobs (what a non-approver may see)."""
    with db.session() as s:
        query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit)
        if requester is not None:
            query = query.where(Job.requester == requester)
        if live_only:
            query = query.where(Job.status.in_([x.value for x in S if x.is_live()]))
        return [load_view(s, job) for job in s.exec(query).all()]


def is_dm(channel: str | None) -> bool:
    return bool(channel) and channel.startswith("D")


def authorize(job: JobView, actor: str, approvers: frozenset[str], what: str,
              channel: str | None = None) -> str | None:
    """Why `actor` may not `what` (cancel, stop, extend, resume, see) this job, or None.
    Its requester or an approver, and — from Slack — in the job's own channel or a DM, so a job
    is never acted on (or shown) where its people are not looking."""
    if actor != job.requester and actor not in approvers and actor != "operator":
        return f"only the requester or an approver can {what} {job.job_id}"
    if channel is not None and job.channel and channel != job.channel and not is_dm(channel):
        return f"{what} {job.job_id} in its own channel ({job.channel}) or in a DM with the bot"
    return None


def refuse(db: Database, job_id: str, actor: str, why: str) -> Outcome:
    """An access refusal: an audit event on the job, and the Outcome that says why."""
    with db.session() as s:
        if s.get(Job, job_id) is not None:
            add_event(s, job_id, "access_refused", actor, why)
    log.info("access refused: %s on %s: %s", actor, job_id, why)
    return Outcome(False, why, None)


def _cheapest(quote: Quote, market: str | None = None) -> Decimal | None:
    costs = [o.cost_usd for o in quote.options
             if o.feasible and (market is None or o.market == market)]
    return usd(min(costs)) if costs else None


def _ended_message(job: Job) -> str:
    who = f" by {job.approved_by}" if job.approved_by else ""
    return f"{job.id} is already {job.status.replace('_', ' ')}{who}"


def decide(db: Database, job_id: str, actor: str,
           decision: Literal["approve", "approve_on_demand", "reject"],
           approvers: frozenset[str]) -> Outcome:
    """Approve or reject a quoted job under the approval policy (workers/rules/budget.py)."""
    if decision not in ("approve", "approve_on_demand", "reject"):
        return Outcome(False, f"unknown decision {decision!r}; use approve, "
                              "approve_on_demand or reject", None)
    now = utcnow()
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return Outcome(False, f"no job {job_id}", None)
        if job.status != S.awaiting_approval.value:
            return Outcome(False, _ended_message(job), load_view(s, job))
        if job.quote_expires_at is not None and now >= job.quote_expires_at:
            if claim(s, job_id, S.awaiting_approval, S.expired):
                add_event(s, job_id, "expired", actor, "the quote expired before a decision")
            s.flush()
            return Outcome(False, f"the quote for {job_id} expired; ask again for fresh prices",
                           load_view(s, s.get(Job, job_id, populate_existing=True)))
        quote = load_view(s, job).quote
        ruling = rule_on_approval(
            decision=decision, actor=actor, requester=job.requester, approvers=approvers,
            budget_usd=job.budget_usd, cap_usd=job.cap_usd,
            cheapest_feasible_usd=_cheapest(quote),
            cheapest_on_demand_usd=_cheapest(quote, "on-demand"),
            custom_code=needs_approver_for_code(quote.request),
            self_approve_limit_usd=_self_approve_limit(),
        )
        if not ruling.allowed:
            return Outcome(False, ruling.message, load_view(s, job))
        approve = decision != "reject"
        values = dict(approved_by=actor, decided_at=now)
        if approve:
            values.update(allowance_usd=ruling.allowance_usd, cap_usd=ruling.cap_usd,
                          on_demand_ok=ruling.on_demand_ok)
        if not claim(s, job_id, S.awaiting_approval, S.approved if approve else S.rejected,
                     **values):
            s.rollback()
            fresh = s.get(Job, job_id, populate_existing=True)
            return Outcome(False, _ended_message(fresh), load_view(s, fresh))
        s.add(Approval(job_id=job_id, actor=actor, decision=decision, at=now,
                       over_budget=ruling.over_budget, as_approver=ruling.as_approver))
        add_event(s, job_id, "approved" if approve else "rejected", actor, ruling.message)
    if approve:
        hand_over(db, job_id, tasks.PROVISION)
    return Outcome(True, ruling.message, get_job(db, job_id))


def _self_approve_limit() -> Decimal:
    """The team's self-approval limit on the cap (trainops.toml [security])."""
    from schemas.config import cached_config
    from schemas.settings import get_settings

    return usd(cached_config(get_settings().config_path).security.self_approve_limit_usd)


def cancel(db: Database, job_id: str, actor: str, approvers: frozenset[str] | None = None,
           channel: str | None = None) -> Outcome:
    """Any live status -> cancelled; a machine, if there may be one, is terminated by a task.
    Cancelling a cancelled job is a no-op that succeeds. With `approvers` (the bot), only the
    requester or an approver may cancel, from the job's channel or a DM; the terminal's
    operator (approvers None) may cancel any job."""
    if approvers is not None:
        view = get_job(db, job_id)
        if view is None:
            return Outcome(False, f"no job {job_id}", None)
        if why := authorize(view, actor, approvers, "cancel", channel):
            return refuse(db, job_id, actor, why)
    for _ in range(10):  # the job may move under us (provisioning -> running): read, try again
        with db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return Outcome(False, f"no job {job_id}", None)
            status = JobStatus(job.status)
            if status == S.cancelled:
                return Outcome(True, f"{job_id} is already cancelled", load_view(s, job))
            if status.is_terminal():
                return Outcome(False, _ended_message(job), load_view(s, job))
            recovering = status == S.interrupted or (status == S.provisioning and job.recoveries)
            cause = FailureCause.cancelled_during_recovery.value if recovering else None
            if claim(s, job_id, status, S.cancelled, failure_cause=cause, stop_reason="user"):
                add_event(s, job_id, "cancelled", actor, f"cancelled by {actor} while {status.value}")
                break
    else:
        return Outcome(False, f"{job_id} kept changing while cancelling; try again", None)
    if status in MACHINE_STATUSES:
        hand_over(db, job_id, tasks.TERMINATE)
    return Outcome(True, f"{job_id} cancelled", get_job(db, job_id))


def expire_quotes(db: Database, now: datetime) -> list[str]:
    """awaiting_approval past quote_expires_at -> expired (prices move; a stale quote is a lie)."""
    with db.session() as s:
        due = s.exec(select(Job.id).where(Job.status == S.awaiting_approval.value,
                                          Job.quote_expires_at < now)).all()
    expired = []
    for job_id in due:
        with db.session() as s:
            if claim(s, job_id, S.awaiting_approval, S.expired):
                add_event(s, job_id, "expired", "worker", "the quote expired before a decision")
                expired.append(job_id)
    return expired


def hand_over(db: Database, job_id: str, task_name: str) -> None:
    """Hand a job to the workers. The move is already committed; if the broker is down the
    monitor's sweep re-enqueues jobs stuck in approved, so this never undoes a decision."""
    try:
        enqueue(task_name, job_id)
    except EnqueueFailed as exc:
        with db.session() as s:
            add_event(s, job_id, "enqueue_failed", "worker", f"{exc}; the monitor will retry")
