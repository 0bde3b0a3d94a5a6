"""The one way a job's row changes: claims (conditional updates) and the append-only event log,
plus JobView, the read model everyone else sees.

A claim is `UPDATE jobs SET status = target ... WHERE id = ? AND status = expected`. The move is
checked against schemas.status.TRANSITIONS first (an illegal move is a bug and raises); a row
count other than one means another worker or click got there first, which is logged and is not
an error: the caller simply does nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Session, select

from schemas.db.tables import Approval, Attempt, Event, Job, QuoteRecord
from schemas.spec import Quote, utcnow
from schemas.status import JobStatus, check_transition

log = logging.getLogger(__name__)


def claim(session: Session, job_id: str, expected: JobStatus | str, target: JobStatus | str,
          **values: Any) -> bool:
    """Move `job_id` from `expected` to `target` if, and only if, it is still in `expected`."""
    expected, target = JobStatus(expected), JobStatus(target)
    check_transition(expected, target)
    stmt = (
        sa.update(Job)
        .where(Job.id == job_id, Job.status == expected.value)
        .values(status=target.value, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    won = session.exec(stmt).rowcount == 1
    if not won:
        log.info("lost claim on %s: %s -> %s (someone else moved it first)",
                 job_id, expected.value, target.value)
    return won


def claim_lease(session: Session, job_id: str, status: JobStatus, now: datetime,
                until: datetime) -> bool:
    """Hold a job in `status` until `until`, unless someone else holds it now. A redelivered
    provision task waits out the lease of the one that crashed, then takes over."""
    stmt = (
        sa.update(Job)
        .where(Job.id == job_id, Job.status == status.value,
               sa.or_(Job.lease_until.is_(None), Job.lease_until < now))
        .values(lease_until=until, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    won = session.exec(stmt).rowcount == 1
    if not won:
        log.info("lease on %s in %s is held by another worker", job_id, status.value)
    return won


def update_fields(session: Session, job_id: str, **values: Any) -> None:
    """Fields that are not the status (root message, spend): plain updates, never a move."""
    if "status" in values:
        raise ValueError("status changes go through claim()")
    session.exec(sa.update(Job).where(Job.id == job_id).values(**values)
                 .execution_options(synchronize_session=False))


def add_event(session: Session, job_id: str, kind: str, actor: str, message: str = "") -> None:
    # Event text often quotes an agent or a person (a failure's last line, a command): no
    # secret value or secret-shaped token is ever kept (schemas/redact.py).
    from schemas.redact import redact_for
    from schemas.settings import get_settings

    message = redact_for(get_settings(), message)
    session.add(Event(job_id=job_id, kind=kind, actor=actor, message=message, at=utcnow()))
    # Every event is also the job's story in the log, one line each (workers/logs.py), written
    # once the transaction commits: a move that rolls back never happened, so it is not told.
    attempt = session.exec(select(sa.func.max(Attempt.attempt))
                           .where(Attempt.job_id == job_id)).one()
    session.info.setdefault(_STORY, []).append(story_line(job_id, attempt, kind, message))


story = logging.getLogger("trainops.jobs")
_STORY = "trainops.story"  # session.info key: the story lines waiting for the commit


@sa.event.listens_for(Session, "after_commit")
def _tell_story(session: Session) -> None:
    for line in session.info.pop(_STORY, ()):
        story.info("%s", line)


@sa.event.listens_for(Session, "after_rollback")
def _forget_story(session: Session) -> None:
    session.info.pop(_STORY, None)


def story_line(job_id: str, attempt: int | None, kind: str, message: str) -> str:
    """'j-4f2a9c attempt 2: launched i-0ab…: g5.xlarge spot in us-east-1a at $0.40/h'."""
    who = f"{job_id} attempt {attempt}" if attempt else job_id
    text = message.strip()
    if attempt and text.startswith(f"attempt {attempt}: "):
        text = text[len(f"attempt {attempt}: "):]
    if not text:
        return f"{who}: {kind.replace('_', ' ')}"
    if text.split(" ", 1)[0].rstrip(":").lower() == kind.lower():
        return f"{who}: {text}"
    return f"{who}: {kind.replace('_', ' ')}: {text}"


class JobView(BaseModel):
    """A job as people and other modules see it: plain values, no database session needed."""

    job_id: str
    status: JobStatus
    failure_cause: str | None = None
    requester: str
    channel: str | None = None
    root_ts: str | None = None
    text: str = ""
    budget_usd: float
    cap_usd: float
    warn: float
    spend_usd: float
    created_at: datetime
    updated_at: datetime
    quote: Quote
    approved_by: str | None = None
    decided_at: datetime | None = None
    quote_expires_at: datetime | None = None
    provider: str | None = None
    on_demand_ok: bool = False
    allowance_usd: float | None = None
    stop_reason: str | None = None
    recoveries: int = 0
    # The spend guard (issue 6): the cap the last warning was for, when a stop was asked, the
    # progress message's ref, and the job this one resumes.
    warned_at_cap: float | None = None
    stop_requested_at: datetime | None = None
    progress_ref: str | None = None
    resume_of: str | None = None
    attempts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    @property
    def live_attempt(self) -> dict[str, Any] | None:
        live = [a for a in self.attempts if a["ended_at"] is None]
        return live[-1] if live else None


def _money(value) -> float | None:
    return None if value is None else float(value)


def load_view(session: Session, job: Job) -> JobView:
    quote_row = session.exec(
        select(QuoteRecord).where(QuoteRecord.job_id == job.id).order_by(QuoteRecord.id.desc())
    ).first()
    attempts = session.exec(
        select(Attempt).where(Attempt.job_id == job.id).order_by(Attempt.attempt)
    ).all()
    events = session.exec(select(Event).where(Event.job_id == job.id).order_by(Event.id)).all()
    return JobView(
        job_id=job.id, status=JobStatus(job.status), failure_cause=job.failure_cause,
        requester=job.requester, channel=job.channel, root_ts=job.root_ts, text=job.text,
        budget_usd=float(job.budget_usd), cap_usd=float(job.cap_usd), warn=job.warn,
        spend_usd=float(job.spend_usd), created_at=job.created_at, updated_at=job.updated_at,
        quote=Quote.model_validate(quote_row.payload), approved_by=job.approved_by,
        decided_at=job.decided_at, quote_expires_at=job.quote_expires_at, provider=job.provider,
        on_demand_ok=job.on_demand_ok, allowance_usd=_money(job.allowance_usd),
        stop_reason=job.stop_reason, recoveries=job.recoveries,
        warned_at_cap=_money(job.warned_at_cap), stop_requested_at=job.stop_requested_at,
        progress_ref=job.progress_ref, resume_of=job.resume_of,
        attempts=[
            {
                "attempt": a.attempt, "provider": a.provider, "instance_id": a.instance_id,
                "instance_type": a.instance_type, "zone": a.zone, "market": a.market,
                "hourly_usd": _money(a.hourly_usd), "launched_at": a.launched_at,
                "ended_at": a.ended_at, "end_reason": a.end_reason,
            }
            for a in attempts
        ],
        events=[{"kind": e.kind, "actor": e.actor, "message": e.message, "at": e.at}
                for e in events],
    )


def approvals_of(session: Session, job_id: str) -> list[Approval]:
    return list(session.exec(select(Approval).where(Approval.job_id == job_id)
                             .order_by(Approval.id)).all())
