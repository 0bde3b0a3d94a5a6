"""spec.json says what was quoted: the approved option's layout, the sweep's runs, the stages
and the RL settings (issues #11, #12). The real grammar, estimator and spec builder."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.grammar.commands import parse_request
from schemas.db.tables import Job
from schemas.job import JobSpec
from workers.providers.job_spec import build_spec
from workers.quoting.calibration import Calibration
from workers.quoting.catalog import catalog_prices
from workers.quoting.estimator import estimate

PRICES = catalog_prices(datetime(2025, 12, 1, tzinfo=UTC))
STORE = "s3://team-bucket"


def spec_for(text, config, instance):
    request = parse_request(text, config)
    quote = estimate(request, config, PRICES, Calibration())
    opt = next(o for o in quote.options if o.instance_type == instance and o.feasible)
    job = Job(id="j-abc", requester="U1", channel="C1", budget_usd=100, cap_usd=100,
              request=request.model_dump(mode="json"))
    spec = build_spec(job, opt, 1, STORE)
    return JobSpec.model_validate_json(spec.model_dump_json()), opt  # what the agent reads


def test_a_sweep_spec_names_each_run_and_the_priced_layout(config):
    spec, opt = spec_for("sft samples=2000 sweep=learning_rate:1e-4,2e-4,5e-4 spot=no",
                         config, "p4d.24xlarge")
    assert [r.model_dump() for r in spec.runs] == [{"name": "learning_rate=0.0001", "overrides": {"learning_rate": 1e-4}},
                         {"name": "learning_rate=0.0002", "overrides": {"learning_rate": 2e-4}},
                         {"name": "learning_rate=0.0005", "overrides": {"learning_rate": 5e-4}}]
    assert spec.strategy == opt.strategy
    assert spec.nproc_per_node == opt.gpus_used
    # The agent gives each run nproc // runs GPUs: the layout the option was priced with.
    assert spec.nproc_per_node // len(spec.runs) == opt.gpus_per_run
    assert spec.stages == ["sft"]


def test_integer_sweeps_override_with_integers(config):
    spec, _ = spec_for("sft samples=500 sweep=lora_r:8,16 spot=no", config, "g5.xlarge")
    assert [r.overrides for r in spec.runs] == [{"lora_r": 8}, {"lora_r": 16}]
    assert spec.strategy == "single" and spec.nproc_per_node == 1


def test_a_pipeline_spec_carries_its_stages_and_rl_settings(config):
    spec, _ = spec_for("pipeline reduced method=best_of_n reward=json spot=no", config,
                       "g6e.xlarge")
    assert spec.stages == ["prep", "sft", "rl", "eval"]
    assert (spec.rl_method, spec.reward) == ("best_of_n", "json")
    assert (spec.num_tasks, spec.n_samples, spec.top_k, spec.rounds) == (30, 5, 2, 1)
    assert spec.eval_samples == 30
    assert [r.model_dump() for r in spec.runs] == [] and spec.init_from is None


def test_from_a_job_means_that_jobs_trained_weights(config):
    spec, _ = spec_for("rl reduced from=j-old spot=no", config, "g6e.xlarge")
    assert spec.init_from == f"{STORE}/jobs/j-old/final/"
    spec, _ = spec_for("eval reduced from=s3://b/jobs/j-x/final/ spot=no", config, "g6e.xlarge")
    assert spec.init_from == "s3://b/jobs/j-x/final/"
    assert spec.stages == ["eval"]
