"""The throughput model against published fine-tuning measurements (throughput_points.toml).

Run with `-s` to see the report: median error factor, share within ±25%, the worst points and
the exclusions. The figures are global constants fit once (docs/throughput-model.md); no point
has a constant of its own.
"""

from __future__ import annotations

import pytest

from workers.quoting.catalog import GPUS
from workers.quoting.points import load_points, score
from workers.quoting.throughput import CHIPS, Setup, scaling_efficiency, tokens_per_s_per_gpu


def test_the_model_explains_the_published_points(capsys):
    result = score()
    with capsys.disabled():
        print("\n" + result.report())
    assert len(result.scored) >= 20
    assert result.median_factor <= 1.25
    assert all(s.factor < 2.0 for s in result.scored), result.worst(1)
    # every exclusion says why
    assert all(len(p.exclude) > 40 for p in result.excluded)


def test_points_carry_source_setup_and_arithmetic():
    for p in load_points():
        assert p.source in {"qwen", "foundry", "torchtune"} and p.arithmetic
        assert p.setup.gpu in CHIPS and p.measured > 0 and p.setup.seq_len > 0


def test_chip_peaks_match_the_catalog():
    for family, gpu in GPUS.items():
        assert CHIPS[family].peak_tflops == gpu.peak_tflops


def _setup(**kw) -> Setup:
    base = dict(gpu="a100", method="lora", params=7.6e9, layers=28, hidden=3584, seq_len=2048)
    return Setup(**{**base, **kw})


def test_utilisation_rises_with_model_size():
    small = _setup(params=1.8e9, layers=24, hidden=2048)
    large = _setup(params=14e9, layers=40, hidden=5120)
    mfu = [4 * s.params * tokens_per_s_per_gpu(s) / 312e12 for s in (small, _setup(), large)]
    assert mfu == sorted(mfu)


def test_tiny_micro_batches_are_slow_per_token_and_long_sequences_are_not():
    short = tokens_per_s_per_gpu(_setup(seq_len=256, micro_batch=1))
    packed = tokens_per_s_per_gpu(_setup(seq_len=2048, micro_batch=8))
    assert packed > 2 * short
    two_k, eight_k = (tokens_per_s_per_gpu(_setup(seq_len=s)) for s in (2048, 8192))
    assert 0.85 < eight_k / two_k <= 1.0  # flat with FlashAttention
    t4_2k, t4_8k = (tokens_per_s_per_gpu(_setup(gpu="t4", seq_len=s)) for s in (2048, 8192))
    assert t4_8k / t4_2k < eight_k / two_k - 0.1  # without it, long sequences cost


def test_h100_is_about_two_and_a_quarter_a100s_on_the_same_recipe():
    recipe = dict(method="full", micro_batch=6, n_gpus=8, interconnect="nvlink", sharded=True)
    ratio = tokens_per_s_per_gpu(_setup(gpu="h100", **recipe)) / tokens_per_s_per_gpu(
        _setup(**recipe))
    assert 2.1 <= ratio <= 2.4


@pytest.mark.parametrize("method", ["full", "lora", "qlora"])
def test_gradient_checkpointing_costs_20_to_35_percent(method):
    off = tokens_per_s_per_gpu(_setup(method=method, micro_batch=4))
    on = tokens_per_s_per_gpu(_setup(method=method, micro_batch=4, gradient_checkpointing=True))
    assert 0.65 <= on / off <= 0.8


def test_qlora_relative_to_lora_depends_on_the_micro_batch():
    def ratio(**kw):
        return tokens_per_s_per_gpu(_setup(method="qlora", **kw)) / tokens_per_s_per_gpu(
            _setup(method="lora", **kw))
    few, many = ratio(seq_len=512), ratio(seq_len=2048, micro_batch=8)
    assert 0.3 < few < many < 1.0 and many > 0.85


def test_scaling_efficiency_figures():
    assert scaling_efficiency(1, "none", "lora") == 1.0
    assert scaling_efficiency(8, "pcie", "lora") == 0.92
    assert scaling_efficiency(8, "pcie", "qlora") == 0.75
    assert scaling_efficiency(8, "nvlink", "full") >= 0.95
