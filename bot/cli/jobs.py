"""`trainops train | status | cancel | interrupt`: the job runner from a terminal.

Every check that can fail on bad input or a missing service (the request, the provider, the job
id, the broker) runs before anything is written, so a failure leaves no half-made job; each is
one line on stderr and exit code 2 (bot/cli/main.py prints UserError that way).
"""

from __future__ import annotations

import getpass
import json
import sys
import time

from pydantic import ValidationError

from schemas.errors import UserError
from schemas.settings import Settings
from schemas.settings import get_settings as _get_settings

FOLLOW_POLL_S = 1.0


def get_settings() -> Settings:
    """The settings, with a bad environment variable as one line instead of a traceback."""
    try:
        return _get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{name}: {first['msg']}") from None


def check_broker(settings: Settings, timeout_s: float = 2.0) -> None:
    """Fail fast, before writing anything, when the broker cannot be reached."""
    from kombu import Connection

    try:
        with Connection(settings.broker_url, connect_timeout=timeout_s,
                        transport_options={"socket_connect_timeout": timeout_s}) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - kombu and redis raise many types for "down"
        where = settings.broker_url.split("@")[-1]  # never print a password
        raise UserError(f"cannot reach the broker at {where} ({type(exc).__name__}); start "
                        "Redis or set TRAINOPS_BROKER_URL") from None


def _db(settings: Settings):
    from schemas.db.database import get_database

    return get_database(settings)


def _job_or_fail(db, job_id: str):
    from workers.state.jobs import get_job

    job = get_job(db, job_id)
    if job is None:
        raise UserError(f"no job {job_id!r}; `trainops status` lists recent jobs")
    return job


def train(args) -> int:
    from bot.cli.quote import render_quote
    from bot.grammar.commands import parse_request
    from schemas.config import cached_config
    from workers.providers import PROVIDERS
    from workers.state import jobs
    from workers.state.measured import quote_measured

    settings = get_settings()
    provider = args.provider or settings.provider
    if provider not in PROVIDERS:
        raise UserError(f"unknown provider {provider!r}; use one of: {', '.join(PROVIDERS)}")
    config = cached_config(settings.config_path)
    request = parse_request(args.text, config)
    db = _db(settings)
    if provider != settings.provider:  # the quote is for the provider that will run it
        settings = settings.model_copy(update={"provider": provider})
    check_broker(settings)
    if provider == "local":  # first use: measure this machine so its quote is its own
        from workers.providers.local_calibration import ensure_profile

        ensure_profile(settings, config, say=lambda line: print(f"trainops: {line}",
                                                                file=sys.stderr, flush=True),
                       request=request)
    # Measured throughput of our finished runs, when there are any (the quote says so).
    quote = quote_measured(request, config, db, settings=settings)
    if not args.json:
        print(render_quote(quote))
    requester = f"cli:{getpass.getuser()}"
    if args.yes:
        actor, decision = "operator", "approve"
    else:
        actor, decision = requester, _ask()
    job_id = jobs.open_job(db, quote, requester, provider=provider,
                           ttl_h=config.defaults.quote_ttl_h)
    outcome = jobs.decide(db, job_id, actor, decision, settings.approvers)
    if not outcome.ok:
        jobs.cancel(db, job_id, actor)  # a job nobody can approve must not linger
        raise UserError(outcome.message + ("" if args.yes else "; `--yes` approves as the operator"))
    if args.detach:
        print(json.dumps({"job_id": job_id}) if args.json else f"{job_id} approved: "
              f"{outcome.message}")
        return 0
    return follow(db, settings, job_id, as_json=args.json)


def _ask() -> str:
    if not sys.stdin.isatty():
        raise UserError("no terminal to ask for approval; pass --yes to approve as the operator")
    answer = input("Approve? [y]es / [o]n-demand allowed / [N]o: ").strip().lower()
    if answer in ("y", "yes"):
        return "approve"
    if answer in ("o", "on-demand"):
        return "approve_on_demand"
    raise UserError("not approved; nothing was started")


def follow(db, settings: Settings, job_id: str, *, as_json: bool = False) -> int:
    """Print the job's events until it ends. The terminal also runs the monitor's tick (claims
    make that safe beside beat), so `train` needs only a worker, not beat."""
    from workers.monitor.tick import tick
    from workers.notify import RecordingNotifier
    from workers.state import jobs

    seen, last_tick = 0, 0.0
    interval = min(settings.monitor_interval_s, 5.0)
    try:
        while True:
            if time.monotonic() - last_tick >= interval:
                tick(db, settings, RecordingNotifier())
                last_tick = time.monotonic()
            job = jobs.get_job(db, job_id)
            for event in job.events[seen:]:
                if not as_json:
                    print(f"{event['at']:%H:%M:%S} {event['kind']:<12} {event['message']}",
                          flush=True)
            seen = len(job.events)
            if job.status.is_terminal():
                if as_json:
                    print(job.model_dump_json(indent=2))
                else:
                    print(f"{job_id} {job.status.value}"
                          + (f" ({job.failure_cause})" if job.failure_cause else ""))
                return 0 if job.status.value == "succeeded" else 1
            time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        print(f"\n{job_id} goes on; `trainops status {job_id}` to look, "
              f"`trainops cancel {job_id}` to stop it", file=sys.stderr)
        return 130


def status(args) -> int:
    from workers.state import jobs

    settings = get_settings()
    db = _db(settings)
    if args.job:
        job = _job_or_fail(db, args.job)
        if args.json:
            from workers.monitor.spend import spend_lines

            data = json.loads(job.model_dump_json())
            data["spend_lines"] = spend_lines(db, job.job_id)
            print(json.dumps(data, indent=2))
            return 0
        print(f"{job.job_id}  {job.status.value}"
              + (f" ({job.failure_cause})" if job.failure_cause else "")
              + f"  by {job.requester}  spent ${job.spend_usd:.2f} of ${job.cap_usd:.2f} cap"
              f" (budget ${job.budget_usd:.2f})")
        for a in job.attempts:
            print(f"  attempt {a['attempt']}: {a['instance_type'] or '-'} {a['market'] or ''} "
                  f"{a['zone'] or ''} {a['instance_id'] or 'no machine'}"
                  + (f"  ended: {a['end_reason']}" if a["ended_at"] else ""))
        for e in job.events:
            print(f"  {e['at']:%Y-%m-%d %H:%M:%S} {e['kind']:<12} {e['actor']:<10} {e['message']}")
        return 0
    rows = jobs.list_jobs(db)
    if args.json:
        print(json.dumps([{"job_id": j.job_id, "status": j.status.value, "requester": j.requester,
                           "budget_usd": j.budget_usd, "cap_usd": j.cap_usd,
                           "spend_usd": j.spend_usd} for j in rows], indent=2))
        return 0
    if not rows:
        print("no jobs yet; `trainops train \"sft smoke\"` starts one")
    for j in rows:
        print(f"{j.job_id}  {j.status.value:<18} {j.requester:<16} ${j.spend_usd:>8.2f} of "
              f"${j.cap_usd:.2f}  {j.text}")
    return 0


def cancel(args) -> int:
    from workers.state import jobs

    settings = get_settings()
    db = _db(settings)
    job = _job_or_fail(db, args.job)
    if job.status.is_live():
        check_broker(settings)  # the terminate goes through a task: check before moving
    outcome = jobs.cancel(db, args.job, f"cli:{getpass.getuser()}")
    print(outcome.message)
    return 0


def interrupt(args) -> int:
    from schemas.job import Control
    from schemas.spec import utcnow
    from schemas.status import JobStatus
    from schemas.store import job_prefix, open_store, read_model, write_model

    settings = get_settings()
    job = _job_or_fail(_db(settings), args.job)
    if job.status not in (JobStatus.running, JobStatus.provisioning):
        raise UserError(f"{args.job} is {job.status.value}; only a running job can rehearse an "
                        "interruption")
    store = open_store(settings.store)
    key = f"{job_prefix(args.job)}/control.json"
    control = read_model(store, key, Control) or Control()
    write_model(store, key, control.model_copy(update={"interrupt": True, "updated_at": utcnow()}))
    print(f"asked the agent of {args.job} to rehearse a spot interruption")
    return 0
