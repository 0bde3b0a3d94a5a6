"""A job quoted for this machine, run to the end on the local provider: its metered cost is
within ±15% of the option it was approved on, and the run teaches the next quote (issue 13)."""

from __future__ import annotations

import importlib.util
import math

import pytest

from bot.cli.main import main
from bot.grammar.commands import parse_request
from schemas.config import load_config
from schemas.settings import get_settings
from schemas.status import JobStatus
from schemas.store import open_store
from tests.integration.workers.local.metered import Metered
from workers.providers.local_calibration import calibrate
from workers.quoting.local_option import read_profile
from workers.state.accuracy import accuracy
from workers.state.measured import quote_measured

S = JobStatus
PRICE = 36.0  # $0.01 a second
TRAIN_S = 90.0  # past the 60 s minimum, so the time model, not the minimum, sets the cost
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),  # a calibration run and a 90 s job, on a machine that may be busy
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the train extra"),
]


def test_a_local_job_costs_what_its_quote_said(runner_env, worker, db, monkeypatch, capsys):
    monkeypatch.setenv("TRAINOPS_LOCAL_PRICE_PER_HOUR", str(PRICE))
    monkeypatch.setenv("TRAINOPS_MONITOR_INTERVAL", "1")
    get_settings.cache_clear()
    settings, config = get_settings(), load_config(None)
    profile = calibrate(settings, config, stages=False)  # first use: the real agent, a few steps
    step_s = profile.measurements[-1].step_s
    steps = max(20, math.ceil(TRAIN_S / step_s))
    text = (f"sft model=tiny data=demo max_steps={steps} epochs=1000 seq_len=256 "
            "precision=fp32 budget=20")
    quote = quote_measured(parse_request(text, config), config, db, settings=settings)
    mine = quote.recommended
    assert mine is not None and mine.market == "local" and mine.hourly_usd == PRICE
    assert mine.calibration.startswith("measured on this machine")

    run = Metered(db, settings, quote, timeout=900, interval=0.5)
    job, job_id = run.job, run.job_id
    assert job.status == S.succeeded, job.events
    assert [a["market"] for a in job.attempts] == ["local"]
    error = run.error_percent(mine.cost_usd)
    with capsys.disabled():
        print(f"\nlocal quote ${mine.cost_usd:.4f} (P90 ${mine.cost_p90_usd:.4f}, {steps} steps "
              f"at {step_s:.3f} s) against metered ${job.spend_usd:.4f}: {error:+.1f}%")
    report = next(e["message"] for e in job.events if e["kind"] == "report")
    assert "succeeded" in report
    full = run.report
    with capsys.disabled():
        print(full)
    # Compared with the approved option, its P90, and the split of the difference.
    assert "against the approved quote (local (this machine))" in full
    assert "Where it differed from the quote: price +$0.00 · setup" in full
    # The run is fed back: the next quote for this machine knows it.
    learnt = read_profile(open_store(settings.store))
    assert learnt.measurements[-1].source == f"job {job_id}"
    assert learnt.measurements[-1].through_monitor
    found = accuracy(db)
    assert found is not None and found.runs == 1 and found.worst_job == job_id
    assert main(["accuracy"]) == 0  # `trainops accuracy`, as a person runs it
    out = capsys.readouterr().out
    assert job_id in out and "median |error|" in out
    # The same shape's steps in the job against the calibration's: the machine's own drift.
    moved = (learnt.measurements[-1].step_s / step_s - 1) * 100
    with capsys.disabled():
        print(f"a step: calibration {step_s:.4f} s, job {learnt.measurements[-1].step_s:.4f} s "
              f"({moved:+.1f}%)")
    run.hold_to(mine.cost_usd, 15, moved=("a step", moved))
