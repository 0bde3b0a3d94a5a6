"""Multi-GPU strategies, sweeps and RL/eval stages in the quote (issues #11, #12): the bundled
catalog, the real estimator, no mocks."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from bot.grammar.commands import parse_request
from workers.quoting.calibration import Calibration
from workers.quoting.catalog import INSTANCES, catalog_prices, hbm_gbs
from workers.quoting.estimator import estimate
from workers.quoting.generation import DECODE_BW_UTIL, Decoder
from workers.quoting.strategy import memory_for
from workers.quoting.throughput import scaling_efficiency
from workers.quoting.workload import work_of

NOW = datetime(2025, 12, 1, tzinfo=UTC)
PRICES = catalog_prices(NOW)
CAL = Calibration()


def quote(text, config):
    return estimate(parse_request(text, config), config, PRICES, CAL)


def option(q, instance, market="on-demand"):
    return next(o for o in q.options if o.instance_type == instance and o.market == market)


# -- strategy ---------------------------------------------------------------------------------

def test_every_option_says_its_strategy_and_gpus(config):
    q = quote("sft samples=2000 spot=no", config)
    for o in q.options:
        assert o.strategy in ("single", "ddp", "fsdp")
        if o.feasible:
            assert 1 <= o.gpus_used <= o.gpu_count
            assert (o.strategy == "single") == (o.gpus_per_run == 1)
    assert option(q, "g5.xlarge").strategy == "single"
    assert option(q, "p4d.24xlarge").strategy in ("ddp", "fsdp")
    assert option(q, "p4d.24xlarge").gpus_used == 8


def test_70b_lora_fits_eight_80gb_gpus_sharded_and_not_one_a10g(config):
    q = quote("sft model=70B samples=1000 spot=no", config)
    for name in ("p4de.24xlarge", "p5.48xlarge"):
        o = option(q, name)
        assert o.feasible, o.reason
        assert o.strategy == "fsdp" and o.gpus_used == 8
        assert o.memory_gb <= o.gpu_memory_gb
    a10g = option(q, "g5.xlarge")
    assert not a10g.feasible
    assert "LoRA of 70.0B params needs ~" in a10g.reason
    assert "1×A10G has 24 GB" in a10g.reason
    need = float(a10g.reason.split("~")[1].split(" ")[0])
    assert 140 <= need <= 170  # 70B × 2 bytes frozen + adapters, optimizer and activations


def test_fsdp_divides_the_state_and_ddp_replicates_it(config):
    work = work_of(parse_request("sft model=70B samples=1000", config), config)
    ddp4, ddp8 = (memory_for(work, n, "ddp", True) for n in (4, 8))
    assert ddp4.per_gpu_gb == ddp8.per_gpu_gb  # replicated: more GPUs do not help
    f4, f8 = (memory_for(work, n, "fsdp", True) for n in (4, 8))
    state = memory_for(work, 1, "single", True, sequences=0).total_gb - 1.5  # less overhead
    assert f4.per_gpu_gb - f8.per_gpu_gb == pytest.approx(state / 4 - state / 8)
    assert f8.per_gpu_gb < ddp8.per_gpu_gb / 4


def test_pcie_instances_scale_worse_than_nvlink(config):
    q = quote("sft samples=20000 spot=no", config)
    g5, p4d = option(q, "g5.12xlarge"), option(q, "p4d.24xlarge")
    assert g5.feasible and p4d.feasible
    assert g5.scaling < p4d.scaling <= 1.0
    assert scaling_efficiency(4, "pcie", "lora") < scaling_efficiency(8, "nvlink", "lora")
    # QLoRA over PCIe scales worse still (gradients wait on dequantisation)
    assert scaling_efficiency(4, "pcie", "qlora") < scaling_efficiency(4, "pcie", "lora")


# -- sweeps -----------------------------------------------------------------------------------

def test_a_sweep_costs_the_sum_of_its_runs_gpu_time(config):
    one = option(quote("sft samples=2000 instance=g5.xlarge spot=no", config), "g5.xlarge")
    three = option(quote("sft samples=2000 instance=g5.xlarge spot=no "
                         "sweep=learning_rate:1e-4,2e-4,5e-4", config), "g5.xlarge")
    assert [r["name"] for r in three.runs] == ["learning_rate=0.0001", "learning_rate=0.0002",
                                               "learning_rate=0.0005"]
    assert three.waves == 3  # one GPU: the runs queue
    assert three.phases["train"] == pytest.approx(3 * one.phases["train"])
    assert sum(r["gpu_hours"] for r in three.runs) == pytest.approx(3 * one.phases["train"])
    # Setup and data are paid once, so the sweep costs less than three separate jobs.
    assert three.cost_usd < 3 * one.cost_usd


def test_a_full_wave_bills_exactly_the_runs_gpu_hours(config):
    q = quote("sft samples=2000 instance=g5.12xlarge spot=no sweep=seed:1,2,3,4", config)
    o = option(q, "g5.12xlarge")
    assert o.gpus_used == o.gpu_count == 4 and o.waves == 1
    gpu_hours = sum(r["gpu_hours"] for r in o.runs)
    assert o.phases["train"] * o.gpus_used == pytest.approx(gpu_hours)


def test_more_runs_than_gpus_go_in_waves(config):
    q = quote("sft reduced instance=g5.12xlarge spot=no sweep=seed:1,2,3,4,5,6", config)
    o = option(q, "g5.12xlarge")
    assert o.gpus_per_run == 1 and o.waves == 2 and o.gpus_used == 4
    assert o.phases["train"] == pytest.approx(2 * o.runs[0]["hours"])


def test_an_epochs_sweep_prices_each_run_by_its_own_epochs(config):
    o = option(quote("sft samples=1000 data=acme/tickets instance=g5.xlarge spot=no "
                      "sweep=epochs:1,3", config),
               "g5.xlarge")
    short, long_ = o.runs
    assert long_["hours"] == pytest.approx(3 * short["hours"])


# -- RL, eval, pipeline -----------------------------------------------------------------------

def test_pipeline_reduced_shows_every_stage_and_fits_100(config):
    q = quote("pipeline reduced budget=100", config)
    assert q.recommended is not None and q.recommended.fits_budget
    for o in (x for x in q.options if x.feasible):
        names = [r["stage"] for r in o.stages]
        assert names[:5] == ["prep", "sft", "rl", "eval", "buffer"]
        assert sum(r["cost_usd"] for r in o.stages) == pytest.approx(o.cost_usd, abs=1e-6)
        assert sum(r["hours"] for r in o.stages) == pytest.approx(o.hours)
        assert all(r["what"] for r in o.stages)
    rl = next(r for r in q.recommended.stages if r["stage"] == "rl")
    assert "150 completions" in rl["what"]  # reduced: 30 tasks × 5 samples


def test_rl_alone_generates_scores_and_updates(config):
    q = quote("rl reduced from=j-abc123 spot=no", config)
    o = option(q, "g6e.xlarge")
    assert set(o.phases) >= {"generation", "reward", "policy_update"}
    assert "train" not in o.phases or o.phases["train"] == 0
    assert [r["stage"] for r in o.stages][:2] == ["prep", "rl"]


def test_best_of_n_trains_on_fewer_completions_than_grpo(config):
    grpo = option(quote("rl reduced method=grpo instance=g5.xlarge spot=no", config), "g5.xlarge")
    best = option(quote("rl reduced method=best_of_n instance=g5.xlarge spot=no", config),
                  "g5.xlarge")
    assert best.phases["policy_update"] == pytest.approx(grpo.phases["policy_update"] * 2 / 5)
    assert best.phases["generation"] == pytest.approx(grpo.phases["generation"])


def test_more_samples_cost_more_generation(config):
    few = option(quote("rl reduced n_samples=4 instance=g5.xlarge spot=no", config), "g5.xlarge")
    many = option(quote("rl reduced n_samples=16 instance=g5.xlarge spot=no", config),
                  "g5.xlarge")
    assert many.phases["generation"] > 2 * few.phases["generation"]


def test_a_faster_memory_generates_faster(config):
    q = quote("eval reduced spot=no", config)
    a10g, l4 = option(q, "g5.xlarge"), option(q, "g6.xlarge")  # 600 vs 300 GB/s
    assert a10g.phases["eval"] < l4.phases["eval"]


def test_decoding_is_bandwidth_bound_until_the_batch_is_large():
    # few layers: the CPU's kernel launches (per layer) stay small beside the weight read
    d = Decoder(params=70e9, layers=20, hidden=8192, weight_bytes=2.0, hbm_gbs=3350.0,
                peak_tflops=989.0, free_gb=20.0)
    weights_s = 70e9 * 2.0 / (3350e9 * DECODE_BW_UTIL)
    assert d.step_s(1, 512) == pytest.approx(weights_s, rel=0.05)
    # batch 8 shares the weight read: nearly 8× the tokens per second
    assert 8 / d.step_s(8, 512) > 7 * (1 / d.step_s(1, 512))
    assert d.batch(512) >= 1


def test_grouped_query_attention_fits_more_sequences_in_the_kv_cache(config):
    full = Decoder(params=8e9, layers=32, hidden=4096, weight_bytes=2.0, hbm_gbs=2039.0,
                   peak_tflops=312.0, free_gb=4.0)
    gqa = Decoder(params=8e9, layers=32, hidden=4096, weight_bytes=2.0, hbm_gbs=2039.0,
                  peak_tflops=312.0, free_gb=4.0, kv_width=1024)  # 8 of 32 heads
    # 4 GB at 2 x 32 layers x width x 2 bytes x 1,024 tokens: 7 sequences at full width, 29 at a quarter
    assert (full.batch(1024), gqa.batch(1024)) == (7, 29)
    assert gqa.tokens_per_s(1024) > 3 * full.tokens_per_s(1024)
    # The model table carries the heads, so a Llama 3.1 8B quote decodes a quarter-width cache.
    info = config.models["meta-llama/Llama-3.1-8B-Instruct"]
    assert (info.heads, info.kv_heads, info.kv_width) == (32, 8, 1024)
    assert work_of(parse_request("rl reduced model=meta-llama/Llama-3.1-8B-Instruct", config),
                   config).shape.kv == 1024


def test_memory_bandwidths_come_from_the_catalog():
    assert hbm_gbs(INSTANCES["p4d.24xlarge"]) == 1555.0  # A100 40 GB
    assert hbm_gbs(INSTANCES["p4de.24xlarge"]) == 2039.0  # A100 80 GB
    assert hbm_gbs(INSTANCES["p5.48xlarge"]) == 3350.0
    assert hbm_gbs(INSTANCES["g5.xlarge"]) == 600.0
    assert hbm_gbs(INSTANCES["g4dn.xlarge"]) == 320.0


def test_a_custom_reward_costs_more_scoring_time(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "score.py").write_text("def score(prompt, completion, answer):\n    return 1.0\n")
    builtin = option(quote("rl reduced reward=exact instance=g5.xlarge spot=no", config),
                     "g5.xlarge")
    custom = option(quote("rl reduced reward=score.py:score instance=g5.xlarge spot=no", config),
                    "g5.xlarge")
    assert custom.phases["reward"] > 10 * builtin.phases["reward"]
    assert math.isfinite(custom.cost_usd)
