"""The final report of a sweep (runs compared, the best named with its weights) and of a
pipeline (per-stage cost, SFT baseline vs RL), and the progress card's stage and runs: pure
figures from the agent's metrics lines (issues #11, #12)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.slack.blocks.guard import progress_blocks
from tests.support.slack_values import progress
from workers.rules.cards import RunLine
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

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RUNS = ["learning_rate=0.0001", "learning_rate=0.0002", "learning_rate=0.0005"]


def log(rows) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode() + b"\n{\"t\": 9"  # a cut last line


def sweep_log() -> bytes:
    rows = []
    for step in range(1, 6):
        for i, run in enumerate(RUNS):
            # the middle run learns fastest; the last diverges
            loss = 2.0 - step * (0.1, 0.25, -0.05)[i]
            rows.append({"t": step * 10 + i, "step": step, "loss": loss, "run": run,
                         "stage": "sft", "tokens": 100})
    rows.append({"t": 25, "step": 5, "loss": 0.1, "run": RUNS[1], "stage": "sft"})  # resumed
    return log(rows)


def test_a_sweep_names_its_best_run_by_final_loss_and_where_its_weights_are():
    rows = parse_rows(sweep_log(), T0)
    results = compare_runs(rows, RUNS)
    assert [r.steps for r in results] == [5, 5, 5]
    assert results[1].final_loss == 0.1  # the newest value of a repeated step counts
    assert best_run(results).name == "learning_rate=0.0002"
    lines = sweep_lines(results, lambda n: f"s3://b/jobs/j-1/runs/{n}/final/")
    text = "\n".join(lines)
    assert "Sweep of 3 runs:" in text
    assert "learning_rate=0.0002       5  0.1000  ← best" in text
    assert ("Best run: learning_rate=0.0002 (final loss 0.1000); weights: "
            "s3://b/jobs/j-1/runs/learning_rate=0.0002/final/") in text


def test_runs_that_never_reported_are_listed_without_a_best():
    results = compare_runs([], RUNS)
    assert best_run(results) is None
    assert "No run reported a loss" in "\n".join(sweep_lines(results, str))


def pipeline_log() -> bytes:
    rows = [{"t": 300 + s, "step": s, "loss": 2.0 - s / 10, "stage": "sft"} for s in range(10)]
    rows.append({"t": 400, "step": 0, "loss": None, "stage": "eval",
                 "eval": {"mean_reward": 0.40, "pass_rate": 0.30, "loss": 1.2,
                          "label": "before_rl"}})
    rows += [{"t": 500 + 10 * s, "step": s, "loss": None, "stage": "rl",
              "reward": 0.4 + s / 50} for s in range(10)]
    rows.append({"t": 700, "step": 0, "loss": None, "stage": "eval",
                 "eval": {"mean_reward": 0.55, "pass_rate": 0.45, "loss": 1.1,
                          "label": "after_rl"}})
    return log(rows)


def test_a_pipeline_reports_each_stage_and_rl_against_the_sft_baseline():
    rows = parse_rows(pipeline_log(), T0)
    seconds = stage_seconds(rows, T0, T0 + timedelta(seconds=800))
    # prep until the first row, then each stage from the previous one's last row to its own
    # last row (its start is its own), the last until the end
    assert seconds == {"prep": 300.0, "sft": 9.0, "eval": 91.0 + 210.0, "rl": 190.0}
    evals = evaluations(rows)
    quoted = [{"stage": "sft", "cost_usd": 0.5}, {"stage": "rl", "cost_usd": 0.25}]
    lines = pipeline_lines(seconds, Decimal("8.00"), quoted, evals)
    text = "\n".join(lines)
    assert "sft     0m 09s  $0.09 (quoted $0.50)" in text
    assert "rl      3m 10s  $1.90 (quoted $0.25)" in text
    costs = [Decimal(line.split("$")[1].split(" ")[0]) for line in lines if "$" in line]
    assert sum(costs) == Decimal("8.00")  # every metered dollar lands in one stage
    assert ("SFT baseline vs RL: mean reward 0.400 → 0.550 (+0.150); pass rate 30% → 45% "
            "(+15%); eval loss 1.200 → 1.100 (−0.100)") in text


def test_an_eval_alone_reports_its_figures():
    rows = parse_rows(log([{"t": 5, "step": 0, "loss": None, "stage": "eval",
                            "eval": {"mean_reward": 0.7, "pass_rate": 0.5}}]), T0)
    text = "\n".join(pipeline_lines({"prep": 5.0, "eval": 10.0}, Decimal("1"), [],
                                    evaluations(rows)))
    assert "Evaluation (eval): mean reward 0.700, pass rate 50%" in text


def test_the_charts_are_pngs(tmp_path):
    spend = [(T0 + timedelta(seconds=60 * i), 0.1 * i) for i in range(10)]
    results = compare_runs(parse_rows(sweep_log(), T0), RUNS)
    one = render_runs_chart(tmp_path / "sweep.png", spend=spend, cap_usd=5, warn_usd=4,
                            runs=results, best=RUNS[1], title="j-1: loss per run")
    rows = parse_rows(pipeline_log(), T0)
    two = render_runs_chart(tmp_path / "pipe.png", spend=spend, cap_usd=5, warn_usd=4,
                            rows=rows, evals=evaluations(rows), title="j-2")
    for path in (one, two):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_progress_card_shows_the_stage_and_every_run():
    runs = (RunLine.of({"name": RUNS[0], "step": 40, "total_steps": 100, "loss": 1.5,
                        "state": "running"}),
            RunLine.of({"name": RUNS[1], "step": 100, "total_steps": 100, "loss": 1.1,
                        "state": "succeeded"}),
            RunLine.of({"name": RUNS[2], "state": "queued"}))
    card = progress(stage="sft", runs=runs)
    lines = card.lines()
    assert "stage sft" in lines[0]
    assert any(RUNS[0] in x and "running" in x and "step 40/100" in x for x in lines)
    assert any(RUNS[2] in x and "queued" in x and "loss n/a" in x for x in lines)
    text = json.dumps(progress_blocks(card))
    assert "stage *sft*" in text
    for run in RUNS:
        assert run in text
