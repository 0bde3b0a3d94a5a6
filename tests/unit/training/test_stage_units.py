"""The units a pipeline runs: the eval before rl the quote prices, unique store keys for a
stage that runs twice, and each eval's label; the figures a metrics line carries."""

from __future__ import annotations

from schemas.checkpoints import Unit, stage_units, unit_prefix
from training.agent.plan import step_figures


def test_the_pipeline_word_runs_an_eval_before_and_after_rl():
    units = stage_units(["prep", "sft", "rl", "eval"])
    assert [u.key for u in units] == ["prep", "sft", "eval", "rl", "eval-2"]
    assert [u.label for u in units if u.stage == "eval"] == ["before_rl", "after_rl"]
    assert stage_units(["prep", "sft", "eval", "rl", "eval"]) == units  # said in full: the same
    assert unit_prefix("jobs/j", None, units[-1].key) == "jobs/j/stages/eval-2"


def test_stages_without_rl_after_an_eval_are_run_as_given():
    assert stage_units(["sft"]) == [Unit("sft", "sft")]
    assert stage_units(["eval"]) == [Unit("eval", "eval")]
    assert [(u.key, u.label) for u in stage_units(["sft", "eval", "rl"])] == [
        ("sft", None), ("eval", "before_rl"), ("rl", None)]


def test_an_evals_figures_become_the_row_the_reports_read():
    figures = {"stage": "eval", "mean_reward": 0.5, "pass_rate": 0.25, "eval_loss": 2.0, "scored": 8}
    assert step_figures(figures, Unit("eval-2", "eval", "after_rl")) == {"eval": {
        "mean_reward": 0.5, "pass_rate": 0.25, "loss": 2.0, "scored": 8, "label": "after_rl"}}
    assert step_figures(figures, Unit("eval", "eval"))["eval"]["label"] == "eval"
    assert step_figures({"stage": "rl", "reward": 0.75}, Unit("rl", "rl")) == {"reward": 0.75}
    assert step_figures(None, None) == {}
