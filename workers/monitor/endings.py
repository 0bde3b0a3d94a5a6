"""The end of a job: the cap notice, the final report with its chart, and the measured
throughput fed back into quotes. Posted once per job (jobs.reported_at is claimed first).

The chart is written to the store's job folder (reports/chart.png) and handed to the notifier
as a local file: on a file:// store that is the store's own file, on S3 a local copy.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import select

from schemas.db.database import Database
from schemas.db.tables import Attempt, Job, ProgressSample, QuoteRecord
from schemas.job import AgentStatus
from schemas.spec import Quote, QuoteOption, TrainRequest, utcnow
from schemas.status import JobStatus
from schemas.store import HEARTBEATS, FileStore, Store, job_prefix, read_model
from workers.monitor import control, quote_check
from workers.monitor.interruptions import last_checkpoint
from workers.monitor.report_runs import extras, wants_extras
from workers.notify import Notifier, safe_event, safe_notify
from workers.rules.report import AttemptFacts, Interruption, render_chart, report_text, summarize
from workers.state.measured import record_run
from workers.state.records import add_event, load_view

log = logging.getLogger(__name__)
S = JobStatus
ENDINGS = (S.succeeded, S.stopped_at_cap, S.cancelled, S.failed)
RECENT = timedelta(days=1)


def due(db: Database) -> list[str]:
    """Ended jobs that had a machine and have no report yet."""
    with db.session() as s:
        return list(s.exec(
            select(Job.id).where(Job.status.in_([x.value for x in ENDINGS]),
                                 Job.reported_at.is_(None), Job.updated_at > utcnow() - RECENT,
                                 sa.exists().where(Attempt.job_id == Job.id,
                                                   Attempt.launched_at.is_not(None)))).all())


def finish(db: Database, store: Store, notifier: Notifier, job_id: str) -> str | None:
    """Claim the report, then: cap notice, report + chart, measured run. Returns the text."""
    with db.session() as s:
        won = s.exec(sa.update(Job).where(Job.id == job_id, Job.reported_at.is_(None))
                     .values(reported_at=utcnow())
                     .execution_options(synchronize_session=False)).rowcount == 1
        if not won:
            return None
        job = s.get(Job, job_id)
        attempts = list(s.exec(select(Attempt).where(Attempt.job_id == job_id,
                                                     Attempt.launched_at.is_not(None))
                               .order_by(Attempt.attempt)).all())
        samples = list(s.exec(select(ProgressSample).where(ProgressSample.job_id == job_id)
                              .order_by(ProgressSample.at)).all())
        record = s.exec(select(QuoteRecord).where(QuoteRecord.job_id == job_id)
                        .order_by(QuoteRecord.id.desc())).first()
        quote = Quote.model_validate(record.payload)
        view = load_view(s, job)
    control.forget(job_id)
    _drop_heartbeats(store, job_id)
    agent = read_model(store, f"{job_prefix(job_id)}/status.json", AgentStatus)
    ckpt = last_checkpoint(store, job_id)
    if job.status == S.stopped_at_cap:
        text = (f"stopped at its cap: spent ${job.spend_usd:.2f} of ${job.cap_usd:.2f}; last "
                f"checkpoint {'step ' + str(ckpt) if ckpt is not None else 'none'}. To go on: "
                f"`/train resume {job_id} budget=+50`")
        with db.session() as s:
            add_event(s, job_id, "cap_reached", "monitor", text)
        safe_event(notifier, view, "cap_reached", text)
    text, chart = report(job, attempts, samples, quote, agent, store,
                         approved=quote_check.approved_option(quote, record.recommended_rank))
    with db.session() as s:
        add_event(s, job_id, "report", "monitor", text.splitlines()[0])
    safe_notify(notifier, view, "report", text, chart)
    if job.status == S.succeeded:
        _measure(db, job, attempts, quote)
        quote_check.learn_local(store, job, attempts)
    return text


def _drop_heartbeats(store: Store, job_id: str) -> None:
    """The agents' copies for the monitor (heartbeats/<job>/) are not needed once the job ended:
    dropped, so the monitor's listing holds live jobs only."""
    try:
        store.delete(f"{HEARTBEATS}/{job_id}")
    except Exception:  # noqa: BLE001 - a leftover costs a listed key, nothing else
        log.warning("could not drop the heartbeats of %s", job_id)


def _option(quote: Quote, a: Attempt) -> QuoteOption | None:
    return next((o for o in quote.options if o.instance_type == a.instance_type
                 and o.market == a.market), None) or next(
        (o for o in quote.options if o.instance_type == a.instance_type), None)


def report(job: Job, attempts: list[Attempt], samples: list[ProgressSample], quote: Quote,
           agent: AgentStatus | None, store: Store, approved: QuoteOption | None = None
           ) -> tuple[str, Path | None]:
    now = utcnow()
    facts, interruptions = [], []
    for i, a in enumerate(attempts):
        o = _option(quote, a)
        on_demand = next((x.hourly_usd for x in quote.options if x.instance_type ==
                          a.instance_type and x.market == "on-demand"), None)
        hourly = a.hourly_usd if a.hourly_usd is not None else Decimal(0)
        facts.append(AttemptFacts(
            instance_type=a.instance_type or "local", gpu_count=o.gpu_count if o else 1,
            market=a.market or "local", launched_at=a.launched_at, ended_at=a.ended_at or now,
            on_demand_usd_per_hour=Decimal(str(on_demand)) if on_demand else hourly,
            end_reason=a.end_reason or ""))
        if a.end_reason == "interrupted" and a.ended_at is not None:
            nxt = attempts[i + 1].launched_at if i + 1 < len(attempts) else a.ended_at
            interruptions.append(Interruption(a.ended_at, _lost_s(samples, a),
                                              max(0.0, (nxt - a.ended_at).total_seconds())))
    quoted = approved or quote.recommended or next((o for o in quote.options if o.feasible),
                                                   None)
    tokens = max((p.tokens_seen for p in samples), default=0)
    figures = summarize(
        status=job.status, started_at=attempts[0].launched_at,
        ended_at=max((f.ended_at for f in facts), default=now), attempts=facts,
        spent_usd=job.spend_usd, quoted_usd=Decimal(str(quoted.cost_usd)) if quoted else Decimal(0),
        tokens=tokens, final_loss=agent.final_loss if agent else None,
        output_uri=agent.output_uri if agent and job.status == S.succeeded else None,
        interruptions=interruptions,
        **quote_check.comparison(store, job, attempts, quoted, now))
    request = TrainRequest.model_validate(job.request)
    if wants_extras(request):  # a sweep or a pipeline: runs compared, stages costed
        lines, chart = extras(job, request, quote, quoted, attempts, samples, store)
        if request.sweep_key and figures.output_uri:
            figures = replace(figures, output_uri=None)  # the best run's weights are named
        return "\n".join([report_text(figures, job.id), *lines]), chart
    chart = _chart(job, attempts, samples, interruptions, store)
    return report_text(figures, job.id), chart


def _lost_s(samples: list[ProgressSample], a: Attempt) -> float:
    """Seconds of training redone after this attempt's interruption: the steps between where it
    got to and where the next attempt resumed, at the rate it was going."""
    mine = [p for p in samples if p.attempt == a.attempt]
    after = [p for p in samples if p.attempt > a.attempt]
    if len(mine) < 2 or not after:
        return 0.0
    rate = (mine[-1].step - mine[0].step) / max(1e-9, (mine[-1].at - mine[0].at).total_seconds())
    lost_steps = max(0, mine[-1].step - after[0].step)
    return lost_steps / rate if rate > 0 else 0.0


def _loss_curve(store: Store, job: Job, attempts: list[Attempt], samples) -> list:
    """Every step's loss from the agents' metrics logs (`t` is seconds since that attempt's agent
    started; it is placed from the attempt's launch, a few seconds early at most). The monitor's
    progress samples, one a tick, are the fallback when no log reached the store."""
    curve = []
    for a in attempts:
        if a.launched_at is None:
            continue
        raw = store.read_bytes(f"{job_prefix(job.id)}/logs/metrics-attempt-{a.attempt}.jsonl")
        for line in (raw or b"").splitlines():
            try:
                row = json.loads(line)
                curve.append((a.launched_at + timedelta(seconds=float(row["t"])),
                              float(row["loss"])))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the upload: the rest still draws
    return sorted(curve) or [(p.at, p.loss) for p in samples if p.loss is not None]


def _chart(job: Job, attempts: list[Attempt], samples, interruptions, store: Store) -> Path | None:
    key = f"{job_prefix(job.id)}/reports/chart.png"
    if isinstance(store, FileStore):
        path = store.root / key
    else:
        path = Path(tempfile.mkdtemp(prefix="trainops-report-")) / "chart.png"
    try:
        render_chart(path, loss=_loss_curve(store, job, attempts, samples),
                     spend=[(p.at, float(p.spend_usd)) for p in samples],
                     cap_usd=float(job.cap_usd), warn_usd=float(job.cap_usd) * job.warn,
                     interruptions=[i.at for i in interruptions],
                     title=f"{job.id}: {job.status.replace('_', ' ')}")
        if not isinstance(store, FileStore):
            store.upload_file(key, path)
    except Exception:  # noqa: BLE001 - the report goes out without its chart
        log.exception("could not draw the chart of %s", job.id)
        return None
    return path


def _measure(db: Database, job: Job, attempts: list[Attempt], quote: Quote) -> None:
    last = attempts[-1]
    o = _option(quote, last)
    if o is None or last.provider == "local":
        return  # a local CPU run says nothing about a GPU
    request = TrainRequest.model_validate(job.request)
    if wants_extras(request):
        return  # calibration learns one SFT run on the whole machine; sweeps and RL differ
    try:
        record_run(db, job_id=job.id, gpu_name=o.gpu, gpu_count=o.gpu_count,
                   instance_type=o.instance_type, params_b=quote.workload.params / 1e9,
                   method=request.method, gradient_checkpointing=o.gradient_checkpointing,
                   seq_len=request.seq_len)
    except Exception:  # noqa: BLE001 - calibration is a nicety; the run is done
        log.exception("could not record the measured throughput of %s", job.id)
