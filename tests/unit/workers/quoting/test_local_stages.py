"""The local option for pipelines and sweeps (issue 13): each stage priced from this machine's
measured rates (sft steps, decoding, stage starts), sweeps as the agent runs them here, every
dollar from billed seconds at the local price."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest

from bot.grammar.commands import parse_request
from schemas.config import load_config
from training.recipes.builtin import BUILTIN_TOKENS_PER_ROW
from workers.quoting.local_option import local_option
from workers.quoting.local_profile import (
    DecodeMeasurement,
    LocalProfile,
    Measurement,
    StageMeasurement,
)
from workers.quoting.local_stages import Rates
from workers.quoting.workload import work_of

CONFIG = load_config(None)
PIPELINE = ("pipeline model=tiny data=demo-rl samples=64 epochs=1 seq_len=64 precision=fp32 "
            "reward=numeric eval_samples=8 num_tasks=16 n_samples=4 budget=20")
PRICE = 36.0  # $0.01 a second
# sft on demo-rl's 64 rows: packed end to end, about 17.23 tokens a row, into ceil(1,103 / 64) =
# 18 sequences of 64, 8 a step: 3 steps (training/recipes/data.py prepare; workload.packed_steps).
SFT_STEPS = math.ceil(math.ceil(64 * BUILTIN_TOKENS_PER_ROW["demo-rl"] / 64) / 8)
FIXED = {"prep": 20.0, "sft": 15.0, "eval": 10.0, "rl": 12.0}


def _profile(gpus: int = 0, **fixed) -> LocalProfile:
    request = parse_request(PIPELINE, CONFIG)
    sft = Measurement(source="calibration", model="tiny", method="lora", precision="fp32",
                      seq_len=64, batch_size=8,
                      flops_per_token=work_of(request, CONFIG).flops_per_token(False),
                      step_s=0.5, setup_s=10.0, finish_s=4.0, through_monitor=True)
    decode = [DecodeMeasurement(source="calibration", model="tiny", batch=b, steps=32,
                                seconds=s * 32) for b, s in ((1, 0.01), (8, 0.02), (32, 0.05))]
    starts = {**FIXED, **fixed}
    stages = [StageMeasurement(source="calibration", stage=st, first=st == "prep", fixed_s=v,
                               wall_s=v) for st, v in starts.items()]
    return LocalProfile(gpus=gpus, gpu="cpu" if not gpus else "a10g", detected="test",
                        measurements=[sft], decode=decode, stages=stages)


def _rates() -> dict:
    request = parse_request(PIPELINE, CONFIG)
    work = work_of(request, CONFIG)
    fpt = work.flops_per_token(False)
    flops_per_s = 8 * 64 / 0.5 * fpt
    return dict(work=work, fpt=fpt, flops=flops_per_s)


def test_a_pipeline_is_each_stage_start_plus_its_work_at_the_measured_rates():
    r = _rates()
    o = local_option(parse_request(PIPELINE, CONFIG), CONFIG, _profile(), PRICE, monitor_s=2.0)
    assert o.feasible, o.reason
    # sft: its packed steps at the measured 0.5 s.
    assert SFT_STEPS == 3
    sft = SFT_STEPS * 0.5
    # eval: 8 held-out prompts decoded together for 32 tokens (0.02 s a step at batch 8); each
    # reference answer one forward (a batch-1 decode step and 2·N·64 FLOPs); a built-in score.
    evaluation = 32 * 0.02 + 8 * (0.01 + 2 * r["work"].shape.params * 64 / r["flops"]) + 8 * 0.001
    # rl: 16 tasks, 8 a step: 2 steps, each 8 x 4 = 32 completions of 32 tokens decoded at
    # batch 32 (0.05 s a step), scored, and trained on (32 + 32 tokens each).
    rl = 2 * (32 * 0.05 + 32 * 0.001) + 2 * 32 * 64 * r["fpt"] / r["flops"]
    # prep first (the agent's start in it), eval before and after rl, the measured finish.
    total = (20 + (15 + sft) + (10 + evaluation) + (12 + rl) + (10 + evaluation) + 4.0)
    assert o.hours * 3600 == pytest.approx(total)
    # Billed per whole second (the meter's rule), at the local price.
    assert o.cost_usd == pytest.approx(math.ceil(total) / 3600 * PRICE)
    assert o.phases["setup"] * 3600 == pytest.approx(20.0)
    assert o.phases["stage_starts"] * 3600 == pytest.approx(15 + 10 + 12 + 10)
    assert o.phases["train"] * 3600 == pytest.approx(sft)
    assert o.phases["eval"] * 3600 == pytest.approx(2 * evaluation)
    assert sum(o.phases.values()) == pytest.approx(o.hours)
    # The breakdown, as the report measures stages (the last one ends with the finish), with
    # shares adding up to the cost exactly.
    hours = {row["stage"]: row["hours"] * 3600 for row in o.stages}
    assert hours == pytest.approx({"prep": 20.0, "sft": 15 + sft, "rl": 12 + rl,
                                   "eval": 2 * (10 + evaluation) + 4.0})
    assert sum(Decimal(str(row["cost_usd"])) for row in o.stages) == Decimal(str(round(
        o.cost_usd, 6)))
    # One measurement of each: 25% more of every figure for the P90.
    assert o.cost_p90_usd == pytest.approx(math.ceil(total * 1.25) / 3600 * PRICE)
    assert "decoding measured on this machine (3 runs at batch 1, 8, 32)" in o.calibration
    assert "stage starts measured on this machine (4 stages)" in o.calibration


def test_the_launch_can_build_the_agents_spec_from_the_option():
    from schemas.job import JobSpec
    from workers.providers.job_spec import plan_fields

    request = parse_request(PIPELINE, CONFIG)
    o = local_option(request, CONFIG, _profile(), PRICE)
    # One process without a GPU: the spec's nproc_per_node must be a real count.
    assert o.gpus_used == 1 and o.gpus_per_run == 1
    spec = JobSpec(job_id="j-1", store_uri="file:///tmp/x", model="tiny", data="demo-rl",
                   **plan_fields(request, o, "file:///tmp/x"))
    assert spec.stages == ["prep", "sft", "rl", "eval"] and spec.nproc_per_node == 1


def test_decoding_between_and_past_the_measured_batches():
    rt = Rates(step_s=1, flops_per_s=1, decode=[(1, 0.01), (8, 0.02), (32, 0.05)], fixed={})
    assert rt.decode_s(1) == rt.decode_s(0) == pytest.approx(0.01)
    assert rt.decode_s(20) == pytest.approx(0.02 + 0.03 * 12 / 24)
    assert rt.decode_s(64) == pytest.approx(0.05 + 0.03 / 24 * 32)  # the last line continued
    one = Rates(step_s=1, flops_per_s=1, decode=[(8, 0.02)], fixed={})
    assert one.decode_s(16) == pytest.approx(0.04) and one.decode_s(4) == pytest.approx(0.02)


def test_a_sweep_runs_one_run_after_another_without_a_gpu():
    # eval_samples=4: the full preset's 200 held-out rows would leave 56 of demo-rl's 256
    text = "sft model=tiny data=demo-rl samples=64 eval_samples=4 epochs=1 seq_len=64 " \
           "precision=fp32 sweep=learning_rate:1e-4,2e-4,3e-4 budget=20"
    o = local_option(parse_request(text, CONFIG), CONFIG, _profile(), PRICE, monitor_s=2.0)
    # The first run's sft has the agent's start in it (the SFT run's measured setup, 10 s); the
    # next runs start an sft stage each (15 s).
    runs = [10 + SFT_STEPS * 0.5, 15 + SFT_STEPS * 0.5, 15 + SFT_STEPS * 0.5]
    assert o.hours * 3600 == pytest.approx(sum(runs) + 4.0)
    assert [r["hours"] * 3600 for r in o.runs] == pytest.approx(runs)
    assert o.waves == 3


def test_a_sweep_on_gpus_gets_them_as_the_agent_gives_them():
    # eval_samples=4: the full preset's 200 held-out rows would leave 56 of demo-rl's 256
    text = "sft model=tiny data=demo-rl samples=64 eval_samples=4 epochs=1 seq_len=64 " \
           "precision=fp32 sweep=learning_rate:1e-4,2e-4 budget=20"
    o = local_option(parse_request(text, CONFIG), CONFIG, _profile(gpus=2), PRICE, monitor_s=2.0)
    # Two runs on one GPU each, side by side; each trains at half the rate measured on both.
    assert o.gpus_per_run == 1 and o.gpus_used == 2 and o.waves == 1
    assert o.hours * 3600 == pytest.approx(10 + 2 * SFT_STEPS * 0.5 + 4.0)


def test_best_of_n_counts_its_rounds_generation_and_fine_tuning():
    text = PIPELINE.replace("pipeline", "rl rl_method=best_of_n rounds=2 top_k=2")
    o = local_option(parse_request(text, CONFIG), CONFIG, _profile(), PRICE, monitor_s=2.0)
    rl = next(row for row in o.stages if row["stage"] == "rl")
    assert "2 round(s) of 16 tasks × 4 samples, 8 fine-tune steps on the best 2" in rl["what"]
    # A round: 16 prompts x 4 samples in one generate call (batch 64, past the largest
    # measured: the last line continued), scored; then 16 x 2 / 8 = 4 steps at 0.5 s.
    decode64 = 0.05 + 0.03 / 24 * 32
    assert o.phases["generation"] * 3600 == pytest.approx(2 * (32 * decode64 + 64 * 0.001))
    assert o.phases["train"] * 3600 == pytest.approx(8 * 0.5)


@pytest.mark.parametrize(("update", "profile", "words"), [
    ({"eval_samples": None}, _profile(), "say eval_samples=N"),  # the agent would refuse it
    ({}, _profile().model_copy(update={"decode": []}), "`trainops calibrate`"),
    ({}, _profile().model_copy(update={"stages": []}), "`trainops calibrate`"),
])
def test_what_cannot_be_priced_here_says_why(update, profile, words):
    request = parse_request(PIPELINE, CONFIG).model_copy(update=update)
    o = local_option(request, CONFIG, profile, PRICE)
    assert not o.feasible and words in o.reason


def test_a_profile_written_before_stages_were_measured_still_loads():
    old = _profile().model_dump(mode="json")
    del old["decode"], old["stages"]
    profile = LocalProfile.model_validate_json(json.dumps(old))
    assert profile.measurements and not profile.measures_stages


def test_another_model_decodes_slower_in_proportion_to_its_parameters():
    text = PIPELINE.replace("model=tiny", "model=Qwen/Qwen2.5-0.5B-Instruct")
    o = local_option(parse_request(text, CONFIG), CONFIG, _profile(), PRICE)
    assert o.feasible and "scaled from tiny by parameters" in o.calibration
    tiny = local_option(parse_request(PIPELINE, CONFIG), CONFIG, _profile(), PRICE)
    assert o.phases["generation"] > tiny.phases["generation"]


def test_completions_that_end_early_cost_less_per_token_asked():
    # Asked for 32 tokens, the batch was done after 4: the quote's figure is per token asked.
    d = DecodeMeasurement(source="calibration", model="tiny", batch=8, steps=4, seconds=0.32,
                          new_tokens=32)
    assert d.step_s == pytest.approx(0.01)
    old = DecodeMeasurement(source="calibration", model="tiny", batch=8, steps=32, seconds=0.32)
    assert old.step_s == pytest.approx(0.01)  # a profile from before: every token decoded
