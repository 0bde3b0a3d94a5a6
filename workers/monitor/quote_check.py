"""The report's comparison with the approved quote, and what a finished local job teaches the
next quote (issue 13). The adapter around workers/rules/accuracy.py: it reads the attempts'
metrics logs from the store and the approved option from the quote record.
"""

from __future__ import annotations

import json
import logging
import statistics

from schemas.spec import Quote, QuoteOption, TrainRequest
from schemas.store import Store, job_prefix
from workers.rules.accuracy import Planned, Ran, differences, planned_from
from workers.rules.billing import MIN_BILLED_S

log = logging.getLogger(__name__)


def approved_option(quote: Quote, recommended_rank: int | None) -> QuoteOption | None:
    """The option the job was approved on: the recorded rank (what provisioning launched),
    else the quote's recommendation."""
    if recommended_rank is not None and 0 <= recommended_rank < len(quote.options):
        return quote.options[recommended_rank]
    return quote.recommended


def _rows(store: Store, job_id: str, attempt: int) -> list[dict]:
    raw = store.read_bytes(f"{job_prefix(job_id)}/logs/metrics-attempt-{attempt}.jsonl")
    out = []
    for line in (raw or b"").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row.get("t"), (int, float)) and "step" in row:
            out.append(row)
    return out


def ran(store: Store, job_id: str, attempts: list, now) -> list[Ran]:
    out = []
    for a in attempts:
        if a.launched_at is None:
            continue
        run_s = ((a.ended_at or now) - a.launched_at).total_seconds()
        rows = _rows(store, job_id, a.attempt)
        setup = train = None
        if len(rows) >= 2:
            # Setup: until the first step began (its length: the median step); training: from
            # there to the last step, as it happened, so setup + training is the agent's time.
            gaps = [b["t"] - r["t"] for r, b in zip(rows, rows[1:], strict=False)]
            setup = max(0.0, rows[0]["t"] - statistics.median(gaps))
            train = rows[-1]["t"] - setup
        out.append(Ran(hourly_usd=a.hourly_usd or 0, billed_s=max(float(MIN_BILLED_S), run_s),
                       setup_s=setup, train_s=train, interrupted=a.end_reason == "interrupted"))
    return out


def comparison(store: Store, job, attempts: list, option: QuoteOption | None, now) -> dict:
    """summarize()'s keyword arguments for the approved option (empty when there is none)."""
    if option is None or not option.feasible:
        return {}
    planned: Planned = planned_from(option)
    try:
        diffs = differences(planned, ran(store, job.id, attempts, now), job.spend_usd)
    except Exception:  # noqa: BLE001 - the report goes out without the split
        log.exception("could not split the cost difference of %s", job.id)
        diffs = {}
    return {"quoted_p90_usd": planned.p90_usd, "approved": planned.label, "differences": diffs}


def learn_local(store: Store, job, attempts: list) -> None:
    """A succeeded local job's measured figures into this machine's profile."""
    if not attempts or attempts[-1].provider != "local":
        return
    from schemas.config import cached_config
    from schemas.settings import get_settings
    from workers.providers.local_calibration import learn_from_job

    try:
        config = cached_config(get_settings().config_path)
        m = learn_from_job(store, config, job.id, TrainRequest.model_validate(job.request),
                           attempts)
        if m is not None:
            log.info("this machine measured again by %s: %.3f s a step, setup %.1f s",
                     job.id, m.step_s, m.setup_s)
    except Exception:  # noqa: BLE001 - a nicety; the run is done
        log.exception("could not learn this machine's speed from %s", job.id)
