"""endings.report for a sweep and a pipeline, on a file store with the agent's metrics logs:
the runs compared and the best run's weights named; the stages costed and RL set against the
SFT baseline; the chart drawn and kept in the store (issues #11, #12). No services."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.grammar.commands import parse_request
from schemas.db.tables import Attempt, Job, ProgressSample
from schemas.job import AgentStatus
from schemas.store import FileStore
from workers.monitor.endings import report
from workers.quoting.calibration import Calibration
from workers.quoting.catalog import catalog_prices
from workers.quoting.estimator import estimate

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PRICES = catalog_prices(T0)
PNG = b"\x89PNG\r\n\x1a\n"


def setup_job(config, store, text, rows):
    request = parse_request(text, config)
    quote = estimate(request, config, PRICES, Calibration())
    job = Job(id="j-sweep1", requester="U1", channel="C1", budget_usd=Decimal(5),
              cap_usd=Decimal(5), warn=0.8, status="succeeded", spend_usd=Decimal("2.40"),
              request=request.model_dump(mode="json"), text=text)
    attempt = Attempt(job_id=job.id, attempt=1, provider="aws", instance_type="g5.xlarge",
                      market="on-demand", hourly_usd=Decimal("1.006"), launched_at=T0,
                      ended_at=T0 + timedelta(seconds=900), end_reason="succeeded")
    store.write_bytes(f"jobs/{job.id}/logs/metrics-attempt-1.jsonl",
                      "\n".join(json.dumps(r) for r in rows).encode())
    samples = [ProgressSample(job_id=job.id, attempt=1, at=T0 + timedelta(seconds=60 * i),
                              step=i, spend_usd=Decimal("0.16") * i) for i in range(15)]
    agent = AgentStatus(state="succeeded", final_loss=0.9,
                        output_uri=f"{store.uri}/jobs/{job.id}/runs/")
    return job, [attempt], samples, quote, agent


def test_a_sweep_report_compares_the_runs_and_names_the_best(config, tmp_path):
    store = FileStore(tmp_path)
    rows = [{"t": 100 + s, "step": s, "loss": 2 - s * k, "run": run, "stage": "sft"}
            for run, k in (("seed=1", 0.1), ("seed=2", 0.15)) for s in range(1, 9)]
    job, attempts, samples, quote, agent = setup_job(
        config, store, "sft samples=64 instance=g5.xlarge spot=no sweep=seed:1,2", rows)
    text, chart = report(job, attempts, samples, quote, agent, store)
    assert "Sweep of 2 runs:" in text
    assert f"Best run: seed=2 (final loss 0.8000); weights: {store.uri}/jobs/j-sweep1/runs/" \
           "seed=2/final/" in text
    assert "Trained weights:" not in text  # the best run's weights are named instead
    assert chart is not None and chart.read_bytes().startswith(PNG)
    assert (tmp_path / "jobs/j-sweep1/reports/chart.png").exists()


def test_a_pipeline_report_costs_each_stage_and_compares_rl_with_sft(config, tmp_path):
    store = FileStore(tmp_path)
    rows = [{"t": 200 + s, "step": s, "loss": 2 - s / 10, "stage": "sft"} for s in range(10)]
    rows.append({"t": 300, "step": 0, "stage": "eval",
                 "eval": {"mean_reward": 0.2, "pass_rate": 0.1, "label": "before_rl"}})
    rows += [{"t": 400 + s * 20, "step": s, "stage": "rl", "reward": 0.2 + s / 40}
             for s in range(10)]
    rows.append({"t": 800, "step": 0, "stage": "eval",
                 "eval": {"mean_reward": 0.45, "pass_rate": 0.3, "label": "after_rl"}})
    job, attempts, samples, quote, agent = setup_job(
        config, store, "pipeline reduced instance=g5.xlarge spot=no budget=5", rows)
    text, chart = report(job, attempts, samples, quote, agent, store)
    for stage in ("prep", "sft", "rl", "eval"):
        assert f"\n{stage} " in text, stage
    assert "(quoted $" in text
    assert ("SFT baseline vs RL: mean reward 0.200 → 0.450 (+0.250); pass rate 10% → 30% "
            "(+20%)") in text
    assert chart is not None and chart.read_bytes().startswith(PNG)


def test_a_plain_sft_report_is_unchanged(config, tmp_path):
    store = FileStore(tmp_path)
    rows = [{"t": 10 + s, "step": s, "loss": 2 - s / 10} for s in range(5)]
    job, attempts, samples, quote, agent = setup_job(
        config, store, "sft samples=64 instance=g5.xlarge spot=no", rows)
    agent = agent.model_copy(update={"output_uri": f"{store.uri}/jobs/j-sweep1/final/"})
    text, _ = report(job, attempts, samples, quote, agent, store)
    assert "Sweep of" not in text and "Stages:" not in text
    assert "Trained weights:" in text
