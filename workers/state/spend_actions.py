"""What people can do about a job's money while it runs (the warning's buttons, /train resume).

Each function takes the Database first, checks who may act, changes the job with a claim or a
plain update, records an event naming the actor, and returns workers.state.jobs.Outcome (a refusal is
an Outcome with ok=False and a one-line reason, never an exception). The monitor does the rest
on its next tick (workers/monitor/tick.py): it reads the new cap, re-arms the warning, terminates a
stop that takes too long.
"""

from __future__ import annotations

from decimal import Decimal

from schemas import tasks
from schemas.config import TeamConfig
from schemas.db.database import Database
from schemas.db.tables import Attempt, Job
from schemas.errors import UserError
from schemas.job import Progress
from schemas.settings import Settings, get_settings
from schemas.spec import Quote, TrainRequest, utcnow
from schemas.status import JobStatus
from schemas.store import job_prefix, open_store, read_model
from workers.monitor import control, interruptions
from workers.monitor.cap import agent_deadline
from workers.rules.budget import usd
from workers.state.jobs import Outcome, cancel, get_job, hand_over, open_job
from workers.state.records import add_event, claim, load_view, update_fields

S = JobStatus
RUNNING = (S.approved, S.provisioning, S.running, S.interrupted)


def _who(job: Job, actor: str, approvers: frozenset[str]) -> str | None:
    if actor in approvers:
        return "approver"
    if actor == job.requester:
        return "requester"
    return None


def extend_cap(db: Database, job_id: str, actor: str, by_usd: Decimal,
               approvers: frozenset[str], *, settings: Settings | None = None) -> Outcome:
    """Approvers only: cap += by_usd (and the approval's allowance with it); the warning is
    re-armed for the new cap and control.json gets the new deadline at once, so an agent alone
    does not stop at the old cap."""
    by = usd(Decimal(str(by_usd)))
    if by <= 0:
        return Outcome(False, f"extend the cap by a positive amount, not ${by}", None)
    settings = settings or get_settings()
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return Outcome(False, f"no job {job_id}", None)
        if actor not in approvers:
            why = (f"only an approver can extend the cap of {job_id} "
                   f"(approvers: {', '.join(sorted(approvers)) or 'none set'})")
            add_event(s, job_id, "access_refused", actor, why)  # an audit trail of refusals
            return Outcome(False, why, load_view(s, job))
        if JobStatus(job.status) not in RUNNING:
            why = ("it is already stopping; `/train resume` goes on from its checkpoint"
                   if job.status == S.stopping else f"it is {job.status.replace('_', ' ')}")
            return Outcome(False, f"cannot extend the cap of {job_id}: {why}", load_view(s, job))
        old, new = job.cap_usd, job.cap_usd + by
        values = dict(cap_usd=new, warned_at_cap=None, updated_at=utcnow())
        if job.allowance_usd is not None:
            values["allowance_usd"] = job.allowance_usd + by
        update_fields(s, job_id, **values)
        live_id = _live_attempt_id(s, job_id)
        live = s.get(Attempt, live_id) if live_id else None
        message = f"cap raised by ${by:.2f}: ${old:.2f} -> ${new:.2f}"
        add_event(s, job_id, "cap_extended", actor, message)
        fresh = s.get(Job, job_id, populate_existing=True)
        when = None
        if live is not None and live.hourly_usd is not None and live.launched_at is not None:
            when = agent_deadline(fresh, live, live.hourly_usd, utcnow(),
                                  settings.monitor_interval_s)
    store = open_store(settings.store)
    control.write_deadline(store, job_id, when, new, force=True)
    return Outcome(True, message, get_job(db, job_id))


def _live_attempt_id(s, job_id: str) -> int | None:
    from sqlmodel import select

    return s.exec(select(Attempt.id).where(Attempt.job_id == job_id, Attempt.ended_at.is_(None))
                  .order_by(Attempt.attempt.desc())).first()


def stop_now(db: Database, job_id: str, actor: str, approvers: frozenset[str], *,
             settings: Settings | None = None) -> Outcome:
    """Requester or approver: the agent checkpoints and exits (control.json stop=true, job ->
    stopping); the monitor terminates the machine if it is still up STOP_GRACE later. A job
    with no running agent (approved, provisioning, interrupted) is simply cancelled."""
    settings = settings or get_settings()
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return Outcome(False, f"no job {job_id}", None)
        if _who(job, actor, approvers) is None:
            why = f"only the requester or an approver can stop {job_id}"
            add_event(s, job_id, "access_refused", actor, why)
            return Outcome(False, why, load_view(s, job))
        status = JobStatus(job.status)
        if status == S.stopping:
            return Outcome(True, f"{job_id} is already stopping", load_view(s, job))
        if status != S.running:
            live = status.is_live()
        else:
            live = None
            now = utcnow()
            if not claim(s, job_id, S.running, S.stopping, stop_reason="user",
                         stop_requested_at=now):
                live = True  # it moved under us: treat as not running
            else:
                add_event(s, job_id, "stopping", actor,
                          f"stop asked by {actor}: checkpoint, then terminate")
    if live is None:
        # Recorded above first; the monitor terminates after the grace even if this fails.
        from workers.monitor.cap import tell_agent_to_stop

        tell_agent_to_stop(open_store(settings.store), job_id)
        return Outcome(True, f"{job_id} is stopping: checkpoint, then terminate",
                       get_job(db, job_id))
    if live:
        return cancel(db, job_id, actor)
    return Outcome(False, f"{job_id} has already ended ({status.value.replace('_', ' ')})",
                   get_job(db, job_id))


def let_run(db: Database, job_id: str, actor: str) -> Outcome:
    """Record that someone chose to let the job run to its cap (which still holds)."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return Outcome(False, f"no job {job_id}", None)
        if not JobStatus(job.status).is_live():
            return Outcome(False, f"{job_id} has already ended", load_view(s, job))
        message = f"{actor} lets it run to the ${job.cap_usd:.2f} cap (it stops there)"
        add_event(s, job_id, "let_run", actor, message)
        view = load_view(s, job)
    return Outcome(True, message, view)


def continue_recovery(db: Database, job_id: str, actor: str, approvers: frozenset[str], *,
                      settings: Settings | None = None) -> Outcome:
    """After an `ask`: relaunch on the next option even though the estimate is over what is
    left. Going over the cap's money needs an approver; the cap itself still holds."""
    settings = settings or get_settings()
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return Outcome(False, f"no job {job_id}", None)
        role = _who(job, actor, approvers)
        if job.status != S.interrupted:
            return Outcome(False, f"{job_id} is {job.status.replace('_', ' ')}, not waiting "
                                  "for a recovery decision", load_view(s, job))
    decision, facts = interruptions.plan(db, settings, job_id, [])
    if decision.kind == "give_up":
        return Outcome(False, decision.reason, get_job(db, job_id))
    over = decision.kind == "ask"
    if role is None or (over and role != "approver"):
        need = "an approver" if over else "the requester or an approver"
        return Outcome(False, f"only {need} can continue {job_id} ({decision.reason})",
                       get_job(db, job_id))
    reason = f"{actor} chose to continue: {decision.reason}"
    ok = interruptions.relaunch(db, settings, job_id, actor, reason, facts,
                             lambda j: hand_over(db, j, tasks.PROVISION), None,
                             lift_allowance=over)
    return Outcome(ok, reason if ok else f"{job_id} moved meanwhile; nothing relaunched",
                   get_job(db, job_id))


RESUMABLE = (S.stopped_at_cap, S.cancelled, S.failed)


def resume(db: Database, job_id: str, actor: str, *, budget_delta_usd: Decimal | None = None,
           budget_usd: Decimal | None = None, config: TeamConfig,
           settings: Settings) -> tuple[str, Quote]:
    """A NEW job in awaiting_approval that starts from `job_id`'s last checkpoint, quoted for
    the work left. Money: `budget_delta_usd` (budget=+50) is what the new job may spend;
    `budget_usd` (budget=150) is the new total including what the old job spent; neither: the
    old job's budget again. Raises UserError (one line) when it cannot be resumed."""
    from workers.state.measured import quote_measured

    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise UserError(f"no job {job_id}")
        if JobStatus(job.status) not in RESUMABLE:
            raise UserError(f"{job_id} is {job.status.replace('_', ' ')}; only a job stopped at "
                            "its cap, stopped, or failed can be resumed")
        request = TrainRequest.model_validate(job.request)
        spent, old_budget, ratio = job.spend_usd, job.budget_usd, job.cap_usd / job.budget_usd
        channel, provider = job.channel, job.provider
    store = open_store(settings.store)
    step = interruptions.last_checkpoint(store, job_id)
    if step is None:
        raise UserError(f"{job_id} left no verified checkpoint to resume from; start a new /train")
    if budget_delta_usd is not None:
        budget = usd(Decimal(str(budget_delta_usd)))
    elif budget_usd is not None:
        budget = usd(Decimal(str(budget_usd)) - spent)
    else:
        budget = old_budget
    if budget <= 0:
        raise UserError(f"budget leaves nothing for the resumed run: {job_id} already spent "
                        f"${spent:.2f}; use budget=+AMOUNT")
    cap = usd(budget * ratio)
    if cap > Decimal(str(config.limits.max_cap_usd)):
        raise UserError(f"a ${cap:.2f} cap is over the team limit of "
                        f"${config.limits.max_cap_usd:.2f}")
    # The training fields stay exactly as they were (else the checkpoint would not fit); only
    # the money changes, and the quote is scaled to the work left.
    request = request.model_copy(update={"budget_usd": float(budget), "cap_usd": float(cap),
                                         "text": f"resume {job_id} from step {step}"})
    quote = quote_measured(request, config, db, settings=settings)
    progress = read_model(store, f"{job_prefix(job_id)}/progress.json", Progress)
    total = progress.total_steps if progress and progress.total_steps else quote.workload.steps
    quote = scale_quote(quote, step, total, job_id)
    new_id = open_job(db, quote, actor, channel, provider=provider,
                      ttl_h=config.defaults.quote_ttl_h)
    with db.session() as s:
        update_fields(s, new_id, resume_of=job_id)
        add_event(s, new_id, "resume_of", actor, f"resumes {job_id} from checkpoint step {step}")
        add_event(s, job_id, "resumed_as", actor, f"resumed as {new_id}")
    return new_id, quote


def scale_quote(quote: Quote, step: int, total: int, job_id: str) -> Quote:
    """The quote for the work left: every option's hours and cost scaled to (total - step) /
    total, with the restart's setup kept whole."""
    left = max(0.0, (total - step) / total) if total else 1.0
    budget = quote.request.budget_usd
    options = []
    for o in quote.options:
        fixed_h = sum(h for name, h in o.phases.items() if name != "train")
        hours = fixed_h + max(0.0, o.hours - fixed_h) * left
        cost = round(hours * o.hourly_usd * (o.cost_usd / (o.hours * o.hourly_usd))
                     if o.hours and o.hourly_usd else o.cost_usd * left, 4)
        options.append(o.model_copy(update={
            "hours": hours, "cost_usd": cost,
            "cost_p90_usd": round(o.cost_p90_usd * (cost / o.cost_usd) if o.cost_usd else 0, 4),
            "fits_budget": cost <= budget}))
    fitting = [o for o in options if o.feasible and o.fits_budget]
    recommended = min(fitting, key=lambda o: o.cost_usd) if fitting else None
    feasible = [o.cost_usd for o in options if o.feasible]
    over = 0.0 if fitting or not feasible else min(feasible) - budget
    notes = [*quote.notes, f"resumes {job_id} from checkpoint step {step} of {total}: quoted "
             f"for the {left:.0%} of the work left"]
    return quote.model_copy(update={"options": options, "recommended": recommended,
                                    "over_budget_usd": over, "notes": notes})
