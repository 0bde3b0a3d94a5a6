"""Provision and terminate: the effects around the launch plan (workers/rules/launch_order.py).

Provision is safe to run twice, concurrently or after a crash:
1. it claims the job (approved -> provisioning) or, for a redelivered task, takes over the
   lease of a provisioning job whose previous worker died;
2. it reuses the attempt row that has no machine yet, so the attempt number, the tags and the
   ClientToken are the same as the crashed run's (the token of the launch in flight is on the
   row, `attempts.client_token`, written before the provider is called);
3. the provider lists machines by job+attempt tag before creating one, and adopts what it finds.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import select

from schemas.db.database import Database
from schemas.db.tables import Attempt, Job, QuoteRecord
from schemas.errors import UserError
from schemas.job import Control
from schemas.settings import Settings
from schemas.spec import QuoteOption, TrainRequest, utcnow
from schemas.status import FailureCause, JobStatus
from schemas.store import job_prefix, open_store, write_model
from workers.monitor.control import forget as forget_deadline
from workers.notify import Notifier, safe_event
from workers.providers import get_provider
from workers.providers.base import (
    CapacityError,
    LaunchError,
    LaunchRequest,
    Machine,
    Provider,
    QuotaError,
    TransientError,
)
from workers.providers.bundle import upload_bundle, user_data
from workers.providers.job_spec import build_spec
from workers.providers.user_files import ship_reward
from workers.rules.cap import deadline
from workers.rules.launch_order import Failure, GiveUp, Try, next_try
from workers.state.records import add_event, claim, claim_lease, load_view, update_fields

log = logging.getLogger(__name__)
S = JobStatus
LEASE = timedelta(minutes=10)


def client_token(job_id: str, attempt: int, t: Try) -> str:
    digest = hashlib.sha256(f"{t.instance_type}|{t.market}|{t.zone}".encode()).hexdigest()[:12]
    return f"{job_id}-{attempt}-{digest}"


def _begin(db: Database, job_id: str, default_provider: str):
    """Claim the job for this worker and open (or reuse) its attempt row. None: nothing to do."""
    now = utcnow()
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            log.warning("provision: no job %s", job_id)
            return None
        if job.status == S.approved:
            won = claim(s, job_id, S.approved, S.provisioning, lease_until=now + LEASE)
        elif job.status == S.provisioning:
            won = claim_lease(s, job_id, S.provisioning, now, now + LEASE)
        else:
            log.info("provision: %s is %s; nothing to do", job_id, job.status)
            return None
        if not won:
            return None
        attempts = s.exec(select(Attempt).where(Attempt.job_id == job_id)
                          .order_by(Attempt.attempt)).all()
        pending = [a for a in attempts if a.instance_id is None and a.ended_at is None]
        if pending:
            number = pending[-1].attempt  # the crashed run's attempt: same tags, same token
        else:
            number = (attempts[-1].attempt + 1) if attempts else 1
            s.add(Attempt(job_id=job_id, attempt=number,
                          provider=job.provider or default_provider))
            add_event(s, job_id, "provisioning", "worker", f"attempt {number}: finding a machine")
        quote = s.exec(select(QuoteRecord).where(QuoteRecord.job_id == job_id)
                       .order_by(QuoteRecord.id.desc())).first()
        if job.provider is None:
            update_fields(s, job_id, provider=default_provider)
        s.flush()
        s.refresh(job)
        return job, number, [QuoteOption.model_validate(o) for o in quote.options], \
            quote.recommended_rank


def _local_try(options: list[QuoteOption], recommended: int | None, provider: Provider) -> Try:
    """The approved option when it is this machine's (issue 13: quotes carry a local option);
    a quote made without one (older jobs, hand-made quotes) runs here too, and `_record` says
    so out loud: never a silent substitute."""
    rank = recommended if recommended is not None else next(
        (i for i, o in enumerate(options) if o.feasible), 0)
    price = float(provider.hourly_usd("local", "local", 0.0))
    return Try(rank, "local", "local", None, price, 0.0)


def _substitute_note(options: list[QuoteOption], rank: int, hourly) -> str | None:
    """One line when the approved option is not the machine the job runs on."""
    approved = options[rank] if rank < len(options) else None
    if approved is None or approved.market == "local":
        return None
    return (f"the approved option was {approved.instance_type} {approved.market} at "
            f"${approved.hourly_usd:.4f}/h; this worker's provider is local, so it runs on this "
            f"machine at ${hourly:.4f}/h instead, and the report compares with that quote")


def provision(db: Database, settings: Settings, job_id: str, notifier: Notifier,
              provider: Provider | None = None) -> str:
    begun = _begin(db, job_id, provider.name if provider else settings.provider)
    if begun is None:
        return "skipped"
    job, number, options, recommended = begun
    provider = provider or get_provider(job.provider, settings)
    try:
        return _launch(db, settings, job, number, options, recommended, provider, notifier)
    except TransientError:
        with db.session() as s:  # let the retry of this task take the job straight back
            update_fields(s, job_id, lease_until=None)
        raise


def _launch(db, settings, job, number, options, recommended, provider, notifier) -> str:
    store = open_store(settings.store)
    request = TrainRequest.model_validate(job.request)
    found = provider.find(job.id, number)
    machine, chosen = (found[0] if found else None), None
    # Zones lost to interruptions (recovery): the plan treats them as out of capacity.
    lost = [Failure(z["instance_type"], z["market"], z["zone"], "interrupted", "zone")
            for z in (job.avoid_zones or []) if z.get("zone")]
    failures: list[Failure] = list(lost)
    zones = provider.zones(request.region)
    if lost and zones == [None] and hasattr(provider, "region_zones"):
        zones = provider.region_zones(request.region)  # let the plan step to another zone
    bundle_uri = None
    while machine is None:
        if provider.name == "local":
            t = _local_try(options, recommended, provider)
        else:
            t = next_try(options, zones, on_demand_ok=job.on_demand_ok,
                         allowance_usd=job.allowance_usd, failures=failures)
        if isinstance(t, GiveUp):
            return _fail(db, job.id, number, t.cause, t.message, notifier)
        option = options[t.rank] if t.rank < len(options) else None
        hourly = provider.hourly_usd(t.instance_type, t.market, t.hourly_usd)
        try:  # nothing launches on a spec the agent would refuse: fail the job, in one line
            spec = build_spec(job, option, number, store.uri)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "spec"
            return _fail(db, job.id, number, FailureCause.precheck,
                         f"the job's spec is not valid ({where}: {first['msg']}); nothing was "
                         "launched", notifier)
        if provider.name == "local":  # this machine, not the quoted one: the agent lays out GPUs
            spec = spec.model_copy(update={"strategy": "single", "nproc_per_node": None})
        try:  # a team's reward file goes with the job; the spec names the store's copy
            spec = ship_reward(store, spec)
        except UserError as exc:
            return _fail(db, job.id, number, FailureCause.precheck, str(exc), notifier)
        # A machine that costs money never trains without its money deadline (security #14).
        spec.require_deadline = hourly > 0
        write_model(store, f"{job_prefix(job.id)}/spec.json", spec)
        # As the monitor writes it (workers/guarding.agent_deadline): the first minute
        # is billed up front, two ticks kept in reserve.
        first = deadline(utcnow(), job.spend_usd + hourly / 60, job.cap_usd, hourly,
                         paid_until=utcnow() + timedelta(seconds=60),
                         reserve=timedelta(seconds=2 * settings.monitor_interval_s))
        write_model(store, f"{job_prefix(job.id)}/control.json", Control(
            deadline=first, cap_usd=float(job.cap_usd),
            seconds_left=None if first is None else (first - utcnow()).total_seconds()))
        forget_deadline(job.id)  # the monitor's next tick writes its own deadline
        spec_uri = f"{store.uri}/{job_prefix(job.id)}/spec.json"
        data = None
        if provider.name == "aws":
            bundle_uri = bundle_uri or upload_bundle(store)
            data = user_data(job_id=job.id, attempt=number, spec_uri=spec_uri,
                             bundle_uri=bundle_uri, region=request.region,
                             qlora=request.peft == "qlora")
        token = client_token(job.id, number, t)
        with db.session() as s:  # on the row before the call: a crash mid-launch leaves it there
            s.exec(sa.update(Attempt).where(Attempt.job_id == job.id, Attempt.attempt == number)
                   .values(client_token=token))
        try:
            provider.precheck(t.instance_type, t.market)
            machine = provider.launch(LaunchRequest(
                job_id=job.id, attempt=number, instance_type=t.instance_type, market=t.market,
                zone=t.zone, spec_uri=spec_uri, client_token=token, user_data=data, reconciled=True))
            chosen = (t, hourly)
        except (CapacityError, QuotaError) as exc:
            scope = exc.scope if isinstance(exc, CapacityError) else "quota"
            failures.append(Failure(t.instance_type, t.market, t.zone, exc.code, scope))
            with db.session() as s:
                add_event(s, job.id, "capacity", "worker",
                          f"{t.instance_type} {t.market} in {t.zone or 'any zone'}: {exc}")
        except LaunchError as exc:
            return _fail(db, job.id, number, FailureCause.setup, str(exc), notifier)
    if chosen is not None and provider.name == "local":
        note = _substitute_note(options, chosen[0].rank, chosen[1])
        if note:
            with db.session() as s:
                add_event(s, job.id, "substitute", "worker", note)
                view = load_view(s, s.get(Job, job.id))
            safe_event(notifier, view, "substitute", note)
    return _record(db, job, number, machine, chosen, options, provider, notifier)


def _record(db, job, number, machine: Machine, chosen, options, provider, notifier) -> str:
    if chosen is None:  # adopted: price it from the quote option it matches
        match = next((o for o in options if o.instance_type == machine.instance_type
                      and o.market == machine.market), None)
        hourly = provider.hourly_usd(machine.instance_type or "", machine.market or "",
                                     match.hourly_usd if match else 0.0)
        how = "adopted"
    else:
        hourly, how = chosen[1], "launched"
    where = ("on this machine" if machine.market == "local"
             else f"{machine.instance_type} {machine.market} in {machine.zone or 'any zone'}")
    with db.session() as s:
        s.exec(sa.update(Attempt).where(Attempt.job_id == job.id, Attempt.attempt == number)
               .values(instance_id=machine.instance_id, instance_type=machine.instance_type,
                       zone=machine.zone, market=machine.market, hourly_usd=hourly,
                       launched_at=machine.launched_at or utcnow()))
        won = claim(s, job.id, S.provisioning, S.running, lease_until=None)
        if won:
            add_event(s, job.id, "launched", "worker",
                      f"{how} {machine.instance_id}: {where} at ${hourly:.4f}/h")
        view = load_view(s, s.get(Job, job.id, populate_existing=True))
    if not won:  # cancelled while we launched: the machine must not outlive the job
        terminate_job(db, job.id, provider, notifier, reason="cancelled while launching")
        return "cancelled"
    safe_event(notifier, view, "launched", f"{how} {where} ({machine.instance_id})")
    return machine.instance_id


def _fail(db, job_id, number, cause: FailureCause, message: str, notifier) -> str:
    with db.session() as s:
        s.exec(sa.update(Attempt).where(Attempt.job_id == job_id, Attempt.attempt == number,
                                        Attempt.instance_id.is_(None))
               .values(ended_at=utcnow(), end_reason=f"no machine: {cause.value}"))
        won = claim(s, job_id, S.provisioning, S.failed, failure_cause=cause.value,
                    lease_until=None)
        if won:
            add_event(s, job_id, "failed", "worker", f"{cause.value}: {message}")
        view = load_view(s, s.get(Job, job_id, populate_existing=True))
    if won:
        safe_event(notifier, view, "failed", f"could not launch ({cause.value}): {message}")
    return f"failed: {cause.value}"


def terminate_job(db: Database, job_id: str, provider: Provider, notifier: Notifier | None,
                  *, reason: str, store=None) -> list[str]:
    """Terminate every machine of the job (recorded or merely tagged) and end its attempts."""
    if store is not None:  # tell the agent first: it stops even if the terminate call fails
        write_model(store, f"{job_prefix(job_id)}/control.json", Control(stop=True))
    with db.session() as s:
        live = s.exec(select(Attempt).where(Attempt.job_id == job_id,
                                            Attempt.ended_at.is_(None))).all()
        ids = {a.instance_id for a in live if a.instance_id}
    ids |= {m.instance_id for m in provider.find(job_id)}
    provider.terminate(ids)
    with db.session() as s:
        s.exec(sa.update(Attempt).where(Attempt.job_id == job_id, Attempt.ended_at.is_(None))
               .values(ended_at=utcnow(), end_reason=reason))
        if ids:
            add_event(s, job_id, "terminated", "worker",
                      f"terminated {', '.join(sorted(ids))} ({reason})")
        job = s.get(Job, job_id)
        view = load_view(s, job) if job else None
    if ids and notifier is not None:
        safe_event(notifier, view, "terminated", f"machine {', '.join(sorted(ids))} terminated")
    return sorted(ids)
