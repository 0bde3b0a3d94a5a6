"""After a spot interruption: tell the thread, then relaunch, ask or give up (the adapter around
the pure workers/rules/recovery.py).

The notice says when, the step of the last verified checkpoint (the newest
checkpoints/step-N/MANIFEST.json in the store: only a manifest makes a checkpoint real), the work
lost, and the spend so far. A relaunch clears stop/interrupt in control.json first, records the
lost zone so the launch plan avoids it, and hands the job to the provision task, which opens a
new attempt (a new attempt number in spec.json) that resumes from the checkpoint.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlmodel import select

from schemas.checkpoints import any_manifested
from schemas.config import cached_config
from schemas.db.database import Database
from schemas.db.tables import Attempt, Job, QuoteRecord
from schemas.job import Progress
from schemas.settings import Settings
from schemas.spec import QuoteOption, utcnow
from schemas.status import FailureCause, JobStatus
from schemas.store import Store, job_prefix, open_store, read_model
from workers.monitor import control
from workers.notify import Notifier, safe_event, safe_notify
from workers.rules.budget import usd
from workers.rules.recovery import Candidate, Recovery, decide_recovery
from workers.state.records import add_event, claim, load_view

log = logging.getLogger(__name__)
S = JobStatus
RESTART_H = Decimal("0.15")  # provisioning + setup + restore, billed again on each relaunch


def last_checkpoint(store: Store, job_id: str) -> int | None:
    # Any unit's checkpoint counts: a sweep's runs and a job's stages keep theirs in subfolders.
    return any_manifested(store, job_prefix(job_id))


def candidates(options: list[QuoteOption], provider: str, local_price: Decimal) -> list[Candidate]:
    if provider == "local":  # one machine, at the local rate for the quoted hours
        mine = [o for o in options if o.feasible and o.market == "local"]  # its own quote
        hours = Decimal(str(min((o.hours for o in (mine or options) if o.feasible),
                                default=0.0)))
        return [Candidate("local", "on-demand", usd(hours * local_price), Decimal(0))]
    return [Candidate(o.instance_type, o.market, usd(Decimal(str(o.cost_usd))),
                      usd(Decimal(str(o.hourly_usd)) * RESTART_H))
            for o in options if o.feasible]


def plan(db: Database, settings: Settings, job_id: str, zones: list[str]) -> tuple[Recovery, dict]:
    """The recovery decision for an interrupted job, and the facts the notice tells."""
    store = open_store(settings.store)
    with db.session() as s:
        job = s.get(Job, job_id)
        attempts = s.exec(select(Attempt).where(Attempt.job_id == job_id)
                          .order_by(Attempt.attempt)).all()
        quote = s.exec(select(QuoteRecord).where(QuoteRecord.job_id == job_id)
                       .order_by(QuoteRecord.id.desc())).first()
    lost = attempts[-1]
    progress = read_model(store, f"{job_prefix(job_id)}/progress.json", Progress)
    ckpt = last_checkpoint(store, job_id)
    total = progress.total_steps if progress and progress.total_steps else 0
    reached = progress.step if progress else 0
    remaining = Decimal(1) if not total else max(Decimal(0), Decimal(total - (ckpt or 0)) / total)
    lost_zones = frozenset(z["zone"] for z in (job.avoid_zones or []) if z.get("zone"))
    options = [QuoteOption.model_validate(o) for o in quote.options]
    provider = job.provider or settings.provider
    decision = decide_recovery(
        candidates=candidates(options, provider,
                              usd(Decimal(str(settings.local_price_per_hour)))),
        lost_type=lost.instance_type or "local",
        lost_zones=lost_zones | ({lost.zone} if lost.zone else frozenset()),
        zones_by_type={lost.instance_type: zones} if zones and lost.instance_type else {},
        remaining_fraction=remaining, remaining_budget_usd=job.cap_usd - job.spend_usd,
        recoveries_so_far=job.recoveries,
        max_recoveries=cached_config(settings.config_path).defaults.max_recoveries,
        allow_on_demand=job.on_demand_ok or provider == "local",  # one's own machine
    )
    rate = progress.tokens_per_s if progress else 0.0
    facts = {"at": lost.ended_at or utcnow(), "ckpt": ckpt, "reached": reached, "total": total,
             "lost_steps": max(0, reached - (ckpt or 0)), "spent": job.spend_usd,
             "zone": lost.zone, "instance_type": lost.instance_type, "rate": rate}
    return decision, facts


def notice(facts: dict) -> str:
    ckpt = f"step {facts['ckpt']}" if facts["ckpt"] is not None else "none (starts over)"
    where = f" in {facts['zone']}" if facts["zone"] else ""
    return (f"interrupted at {facts['at']:%H:%M:%S} UTC{where}: last verified checkpoint "
            f"{ckpt} of {facts['total'] or '?'}; work lost {facts['lost_steps']} steps "
            f"(reached step {facts['reached']}); spent ${facts['spent']:.2f} so far")


def handle(db: Database, settings: Settings, notifier: Notifier, job_id: str, zones: list[str],
           enqueue) -> str:
    """Notice, then relaunch / ask / give up. Returns the decision's kind."""
    decision, facts = plan(db, settings, job_id, zones)
    with db.session() as s:
        add_event(s, job_id, "interruption", "monitor", notice(facts))
        view = load_view(s, s.get(Job, job_id))
    safe_event(notifier, view, "interruption", notice(facts))
    if decision.kind == "relaunch":
        relaunch(db, settings, job_id, "monitor", decision.reason, facts, enqueue, notifier)
    elif decision.kind == "ask":
        with db.session() as s:
            add_event(s, job_id, "ask_recovery", "monitor", decision.reason)
            view = load_view(s, s.get(Job, job_id))
        safe_notify(notifier, view, "ask_recovery",
                    f"{decision.reason}. Continue on the next option, or stop?")
    else:
        with db.session() as s:
            won = claim(s, job_id, S.interrupted, S.failed,
                        failure_cause=FailureCause.recoveries_exhausted.value)
            if won:
                add_event(s, job_id, "failed", "monitor", f"gave up: {decision.reason}")
            view = load_view(s, s.get(Job, job_id))
        if won:
            safe_event(notifier, view, "failed", f"gave up recovering: {decision.reason}; the "
                       f"last checkpoint (step {facts['ckpt']}) is kept; "
                       f"`/train resume {job_id}` goes on from it")
    return decision.kind


def relaunch(db: Database, settings: Settings, job_id: str, actor: str, reason: str,
             facts: dict | None, enqueue, notifier: Notifier | None, *,
             lift_allowance: bool = False) -> bool:
    """interrupted -> provisioning (recoveries + 1), the lost zone avoided, control.json cleared
    of stop/interrupt first (the new attempt must not obey the old one's flags)."""
    store = open_store(settings.store)
    control.update_control(store, job_id, stop=False, interrupt=False)
    with db.session() as s:
        job = s.get(Job, job_id)
        lost = s.exec(select(Attempt).where(Attempt.job_id == job_id)
                      .order_by(Attempt.attempt.desc())).first()
        avoid = list(job.avoid_zones or [])
        if lost is not None and lost.zone:
            avoid.append({"instance_type": lost.instance_type, "market": lost.market,
                          "zone": lost.zone})
        values = dict(recoveries=job.recoveries + 1, avoid_zones=avoid, lease_until=None,
                      stop_requested_at=None)
        if lift_allowance:
            values["allowance_usd"] = None
        won = claim(s, job_id, S.interrupted, S.provisioning, **values)
        if won:
            add_event(s, job_id, "recovering", actor, reason)
        view = load_view(s, s.get(Job, job_id, populate_existing=True))
    if not won:
        return False
    if notifier is not None:
        safe_event(notifier, view, "recovering", f"recovering (#{view.recoveries}): {reason}")
    if enqueue is not None:
        enqueue(job_id)
    return True
