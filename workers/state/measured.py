"""Measured throughput of finished runs, and the quotes' calibration built from them.

Every run that trained on a GPU the catalog knows leaves one row in `measured_runs` (GPU family,
model size, method, tokens/s per GPU). `measured_calibration` lays those rows over the team's
overrides and the published figures, so the next quote for a similar run uses what we saw; the
option then says "measured (N runs)" and the quote carries a note.
"""

from __future__ import annotations

import logging
import statistics

from sqlmodel import select

from schemas.config import TeamConfig
from schemas.db.database import Database
from schemas.db.tables import MeasuredRun, ProgressSample
from schemas.spec import Quote, TrainRequest
from workers.quoting.calibration import Calibration, Measured
from workers.quoting.catalog import GPUS

log = logging.getLogger(__name__)


def measured_calibration(db: Database, config: TeamConfig) -> Calibration:
    """The team's calibration plus every measured run in the database."""
    base = Calibration.from_config(config.calibration)
    with db.session() as s:
        rows = s.exec(select(MeasuredRun)).all()
    return base.with_measured(
        Measured(r.gpu, r.method, r.params_b, r.tokens_per_s, 1, r.gradient_checkpointing,
                 seq_len=r.seq_len or 2048, gpu_count=r.gpu_count or 1)
        for r in rows)


def quote_measured(request: TrainRequest, config: TeamConfig, db: Database | None, *,
                   settings=None, **kwargs) -> Quote:
    """make_quote with the measured calibration (when a database is at hand); the quote notes
    which options used measured figures."""
    from workers.quoting import make_quote

    cal = None
    if db is not None:
        try:
            cal = measured_calibration(db, config)
        except Exception:  # noqa: BLE001 - a quote without measured figures beats no quote
            log.exception("could not read measured runs; quoting from published figures")
    quote = make_quote(request, config, settings=settings, calibration=cal, **kwargs)
    used = sorted({o.calibration for o in quote.options if o.calibration.startswith("measured")
                   and o.market != "local"})  # this machine's option names its own source
    if used:
        quote.notes.append("throughput from our own finished runs: " + "; ".join(used))
    return quote


def record_run(db: Database, *, job_id: str, gpu_name: str, gpu_count: int,
               instance_type: str, params_b: float | None, method: str,
               gradient_checkpointing: bool, seq_len: int) -> MeasuredRun | None:
    """One row for a finished run from its progress samples (median tokens/s while training),
    or None when it ran on nothing the catalog knows (a local CPU) or measured nothing."""
    family = (gpu_name or "").lower()
    if family not in GPUS or not params_b or gpu_count <= 0:
        return None
    with db.session() as s:
        rates = [r for r in s.exec(select(ProgressSample.tokens_per_s)
                                   .where(ProgressSample.job_id == job_id)).all() if r and r > 0]
        if not rates or s.exec(select(MeasuredRun).where(MeasuredRun.job_id == job_id)).first():
            return None
        row = MeasuredRun(job_id=job_id, gpu=family, gpu_count=gpu_count,
                          instance_type=instance_type, params_b=params_b, method=method,
                          gradient_checkpointing=gradient_checkpointing,
                          tokens_per_s=statistics.median(rates) / gpu_count, seq_len=seq_len)
        s.add(row)
    return row
