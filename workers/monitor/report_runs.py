"""The final report of a sweep or a pipeline (issues #11, #12): the agent's metrics logs read
from the store, compared by workers/rules/runs_report.py, drawn by workers/rules/runs_chart.py.
endings.py calls `extras` for a job with more than one run or more than the SFT stage."""

from __future__ import annotations

import logging
import tempfile
from decimal import Decimal
from pathlib import Path

from schemas.db.tables import Attempt, Job
from schemas.spec import Quote, QuoteOption, TrainRequest, utcnow
from schemas.store import FileStore, Store, job_prefix
from workers.quoting.jobplan import stages_of, sweep_runs
from workers.rules.runs_chart import render_runs_chart
from workers.rules.runs_report import (
    best_run,
    compare_runs,
    evaluations,
    parse_rows,
    pipeline_lines,
    stage_seconds,
    sweep_lines,
)

log = logging.getLogger(__name__)


def wants_extras(request: TrainRequest) -> bool:
    return bool(request.sweep_key) or stages_of(request) != ["sft"]


def run_weights(store: Store, job_id: str, run: str) -> str:
    """Where the agent puts a sweep run's trained weights (schemas/checkpoints.py unit_prefix:
    `runs/<name>/` under the job, `final/` in it)."""
    return f"{store.uri}/{job_prefix(job_id)}/runs/{run}/final/"


def rows_of(store: Store, job: Job, attempts: list[Attempt]) -> list:
    rows = []
    for a in attempts:
        if a.launched_at is None:
            continue
        raw = store.read_bytes(f"{job_prefix(job.id)}/logs/metrics-attempt-{a.attempt}.jsonl")
        rows += parse_rows(raw, a.launched_at)
    return sorted(rows, key=lambda r: r.at)


def extras(job: Job, request: TrainRequest, quote: Quote, quoted: QuoteOption | None,
           attempts: list[Attempt], samples, store: Store) -> tuple[list[str], Path | None]:
    """Lines to add to the report, and the chart that replaces the single-run one."""
    rows = rows_of(store, job, attempts)
    now = utcnow()
    lines: list[str] = []
    runs, best = [], None
    if request.sweep_key:
        names = [name for name, _ in sweep_runs(request)]
        runs = compare_runs(rows, names)
        best = best_run(runs)
        lines += sweep_lines(runs, lambda name: run_weights(store, job.id, name))
    evals = evaluations(rows)
    if stages_of(request) != ["sft"]:
        launched = attempts[0].launched_at
        ended = max((a.ended_at or now for a in attempts), default=now)
        lines += pipeline_lines(stage_seconds(rows, launched, ended), Decimal(job.spend_usd),
                                quoted.stages if quoted else [], evals)
    key = f"{job_prefix(job.id)}/reports/chart.png"
    path = store.root / key if isinstance(store, FileStore) else \
        Path(tempfile.mkdtemp(prefix="trainops-report-")) / "chart.png"
    try:
        what = "loss per run" if runs else "loss, reward and evaluations"
        render_runs_chart(path, spend=[(p.at, float(p.spend_usd)) for p in samples],
                          cap_usd=float(job.cap_usd), warn_usd=float(job.cap_usd) * job.warn,
                          runs=runs, best=best.name if best else None, rows=rows, evals=evals,
                          title=f"{job.id}: {what}")
        if not isinstance(store, FileStore):
            store.upload_file(key, path)
    except Exception:  # noqa: BLE001 - the report goes out without its chart
        log.exception("could not draw the chart of %s", job.id)
        return lines, None
    return lines, path
