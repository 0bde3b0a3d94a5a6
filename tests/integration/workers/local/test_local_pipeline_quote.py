"""A pipeline quoted for this machine stage by stage, run to the end on the local provider through
the real worker: prep, sft, the eval before rl, GRPO, the eval after it, each a child process of
the real agent. Its metered cost is within ±20% of the option it was approved on, it ran on that
option (no substitute), and it teaches the next quote its stages' starts (issue 13)."""

from __future__ import annotations

import importlib.util
from decimal import Decimal

import pytest

from bot.grammar.commands import parse_request
from schemas.config import load_config
from schemas.settings import get_settings
from schemas.status import JobStatus
from schemas.store import open_store
from tests.integration.workers.local.metered import Metered
from workers.providers.local_calibration import calibrate
from workers.quoting.local_option import read_profile
from workers.state.measured import quote_measured

PRICE = 36.0  # $0.01 a second
# The demo's pipeline (bot/demo/pipeline.py) with as many rl tasks (8 a step, 4 completions
# each), and then epochs, as make the quote about QUOTED_S: past the 60 s minimum, so the time
# model, not the minimum, sets the cost. demo-rl has 240 training rows; on a quiet machine 240
# tasks in one epoch can still quote under a minute (sft packs its 64 short rows into 3 steps an
# epoch), so epochs go on from there.
TEXT = ("pipeline model=tiny data=demo-rl samples=64 epochs={epochs} seq_len=64 precision=fp32 "
        "reward=numeric eval_samples=16 num_tasks={tasks} n_samples=4 budget=20")
SIZES = [(epochs, tasks) for epochs in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
         for tasks in range(16, 241, 8)]
QUOTED_S = 100.0
# The sft job's bound is ±15% (test_local_quote.py). A pipeline's cost is mostly its rl stage,
# whose GRPO steps vary from run to run more than sft's: four identical runs of this test on a
# quiet 2-vCPU VM (load 1.6-2.0) spent -8.5%, -6.0%, +11.4% and +16.7% against the same quote,
# rl taking 77-102 s where 85 s was quoted. Hence ±20% here (benchmarks/RESULTS.md).
BOUND = 20
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1500),  # calibration (sft, decoding, a pipeline) and the job itself
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the train extra"),
]


def test_a_local_pipeline_costs_what_its_quote_said(runner_env, worker, db, monkeypatch, capsys):
    monkeypatch.setenv("TRAINOPS_LOCAL_PRICE_PER_HOUR", str(PRICE))
    monkeypatch.setenv("TRAINOPS_MONITOR_INTERVAL", "1")
    get_settings.cache_clear()
    settings, config = get_settings(), load_config(None)
    profile = calibrate(settings, config)  # first use: sft steps, decoding, stage starts
    assert profile.measures_stages
    assert {(m.stage, m.first) for m in profile.stages} == {
        ("prep", True), ("sft", False), ("eval", False), ("rl", False)}
    for epochs, tasks in SIZES:  # demo-rl holds 256 rows, 16 of them held out
        quote = quote_measured(parse_request(TEXT.format(epochs=epochs, tasks=tasks), config),
                               config, db, settings=settings)
        if quote.options[0].hours * 3600 >= QUOTED_S:
            break
    mine = quote.recommended
    assert mine is not None and mine.market == "local" and mine.hourly_usd == PRICE, quote.notes
    assert [r["stage"] for r in mine.stages] == ["prep", "sft", "rl", "eval"]
    assert sum(Decimal(str(r["cost_usd"])) for r in mine.stages) == Decimal(str(round(
        mine.cost_usd, 6)))
    assert "decoding measured on this machine" in mine.calibration
    assert mine.hours * 3600 > 60, "a quote within the 60 s minimum cannot be wrong"

    # Every 2 s: the test's own monitor loop shares the 2 cores with the agent it measures.
    run = Metered(db, settings, quote, timeout=1200, interval=2.0)
    job, job_id = run.job, run.job_id
    assert job.status == JobStatus.succeeded, job.events
    assert [a["market"] for a in job.attempts] == ["local"]
    assert not [e for e in job.events if e["kind"] == "substitute"]  # the approved option ran
    error = run.error_percent(mine.cost_usd)
    full = run.report
    measured = "; ".join(f"{m.source} {m.stage} start {m.fixed_s:.1f} s"
                         + (f" ×{m.factor:.1f}" if m.factor else "") for m in profile.stages)
    with capsys.disabled():
        print(f"\nmeasured: {measured}; decoding " + ", ".join(
            f"{d.step_s * 1000:.0f} ms/token at batch {d.batch}" for d in profile.decode))
        print(f"local pipeline quote ${mine.cost_usd:.4f} (P90 ${mine.cost_p90_usd:.4f}, "
              f"{mine.hours * 3600:.0f} s) against metered ${job.spend_usd:.4f}: {error:+.1f}%; "
              f"load average up to {max(run.loads):.1f}\n{full}")
    assert "against the approved quote (local (this machine))" in full
    assert "Stages:" in full and "(quoted $" in full
    # The run is fed back: its stages' starts join the profile for the next quote.
    learnt = read_profile(open_store(settings.store))
    assert [m.stage for m in learnt.stages if m.source == f"job {job_id}"] == [
        "prep", "sft", "eval", "rl", "eval"]
    # Most of the cost is rl, whose steps have the calibration's shape (8 tasks x 4 completions
    # of the same model): their measured factor in the job against the calibration's is the
    # machine's own drift (the model of a step is the same for both).
    factor = {m.source: m.factor for m in learnt.stages if m.stage == "rl" and m.factor}
    moved = (factor[f"job {job_id}"] / factor["calibration"] - 1) * 100
    with capsys.disabled():
        print(f"an rl step: x{factor['calibration']:.2f} the model in calibration, "
              f"x{factor[f'job {job_id}']:.2f} in the job ({moved:+.1f}%)")
    run.hold_to(mine.cost_usd, BOUND, moved=("an rl step", moved))
