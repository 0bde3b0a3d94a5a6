"""How fast a fine-tuning run goes: tokens per second per GPU, from the run's shape.

Pure arithmetic, no IO. The model is built to explain published measurements
(workers/quoting/throughput_points.toml, scored in tests/unit/quoting) and is explained in
docs/throughput-model.md. In one sentence: a micro-batch takes the longer of what the GPU must
compute and what the CPU must launch, and the GPU's part is matrix work at a utilisation that
grows with the model's width, attention at the attention kernel's own speed, plus the fixed costs
some methods pay on every micro-batch whatever its size.

Utilisation is counted the usual way: 6·N FLOPs per token for full fine-tuning, 4·N for LoRA and
QLoRA (the frozen weights skip their weight-gradient matmuls), without recomputation.
"""

from __future__ import annotations

from dataclasses import dataclass

# FLOPs per token per parameter for each method (forward 2·N, backward 4·N, LoRA skips 2·N).
FLOPS_PER_PARAM = {"full": 6.0, "lora": 4.0, "qlora": 4.0}


@dataclass(frozen=True)
class Chip:
    """What the model needs of a GPU: peak dense BF16/FP16 tensor FLOP/s, memory bandwidth, and
    how well our software fills it compared with an A100 (same recipe)."""

    peak_tflops: float
    bandwidth_gbs: float
    generation: float  # utilisation relative to an A100 running the same recipe
    flash_attention: bool  # FlashAttention-2 runs on it (Ampere and newer)


# Generation factors, and why:
# - H100: same-recipe runs in llm-foundry's tables are 2.16-2.34x an A100-80GB per GPU (median
#   ~2.25x) while the peak ratio is 989/312 = 3.17x: the H100 is filled to ~0.71 of an A100's
#   fraction, because everything that is not a big matmul did not get 3x faster.
# - A10G, L4, L40S: no same-recipe measurement; taken as an A100 (their peaks are the limit).
#   L4's 72 W cap keeps it below its boost-clock peak under sustained load: 0.9.
# - T4, V100: no FlashAttention-2; fp16 only. Assumed like an A100 for matmuls, the attention
#   penalty is in the attention term below.
CHIPS: dict[str, Chip] = {
    "a100": Chip(312.0, 2039.0, 1.0, True),
    "h100": Chip(989.0, 3350.0, 0.71, True),
    "a10g": Chip(70.0, 600.0, 1.0, True),
    "l4": Chip(121.0, 300.0, 0.9, True),
    "l40s": Chip(362.0, 864.0, 0.9, True),
    "t4": Chip(65.0, 320.0, 1.0, False),
    "v100": Chip(125.0, 900.0, 1.0, False),
    # Only in calibration points (consumer card, not rentable on AWS).
    "rtx4090": Chip(165.0, 1008.0, 1.0, True),
}

# --- The fitted figures (one value each for every point; docs/throughput-model.md) ----------
# Matrix-work utilisation of a wide model on an A100 with our stack, without recomputation.
UTIL_WIDE = 0.70
# Width at which the per-token non-matmul work (norms, activations, rotary, LoRA's thin adapter
# matmuls, casts) costs as much time as the matmuls: that work grows with hidden size, matmuls
# with its square, so utilisation rises with model size as hidden / (hidden + WIDTH_HALF).
WIDTH_HALF = 1300.0
# A stack built for speed (fused kernels, torch.compile, tuned FSDP) over the HF stack.
STACK = {"hf": 1.0, "tuned": 1.25}
# Attention kernels, as a fraction of peak: FlashAttention-2 forward+backward reaches 50-70% of
# an A100's peak in its paper; and it skips the masked half of a causal sequence. Without it
# (eager or memory-efficient attention on T4/V100) the scores are materialised: ms-swift measured
# Qwen-7B LoRA at seq 2048 1.38x slower without flash attention, which is ~12% of peak.
ATTN_UTIL = {True: 0.5, False: 0.12}
# Gradient checkpointing: time multiplier on the GPU work. ms-swift measured Qwen-7B LoRA 1.44x
# slower with it (1.42x without flash attention); for full fine-tuning the extra forward is
# 2·N of 6·N, and llm-foundry's MFU with and without it differs by ~10-25%.
CHECKPOINTING = {"full": 1.25, "lora": 1.43, "qlora": 1.43}
# CPU time to launch one layer's kernels for a micro-batch (forward, backward and, with
# checkpointing, the recompute) in eager PyTorch: small micro-batches never fill the GPU. Qwen's
# 1.8B/7B LoRA take the same ~0.125/0.15 s per micro-batch at 256 and 512 tokens.
LAUNCH_S_PER_LAYER = 0.0036
# QLoRA dequantises every 4-bit weight to bf16 on every pass (forward, recompute, backward):
# memory traffic per parameter per pass, as measured (Qwen QLoRA's step time has a ~3.3e-11 s per
# parameter intercept on an A100), not as the bytes alone would suggest.
DEQUANT_BYTES_PER_PARAM = 28.0
# ZeRO/FSDP full fine-tuning handles each parameter's gradient on every micro-batch (bucketing,
# reduce-scatter, fp32 accumulation): Qwen's full fine-tuning spends ~0.26 s per micro-batch on
# 1.8B parameters whatever the sequence; that is ~130 bytes per parameter held at HBM speed.
SHARDED_BYTES_PER_PARAM = 150.0


@dataclass(frozen=True)
class Setup:
    """One training run's shape as the throughput model sees it."""

    gpu: str  # family key of CHIPS
    method: str  # full | lora | qlora
    params: float
    layers: int
    hidden: int
    seq_len: int
    micro_batch: int = 1  # sequences per micro-batch on each GPU
    gradient_checkpointing: bool = False
    flash_attention: bool | None = None  # None: whatever the GPU runs
    n_gpus: int = 1
    interconnect: str = "none"  # none | pcie | nvlink | network
    stack: str = "hf"
    sharded: bool = False  # full fine-tuning with ZeRO/FSDP state sharding
    utilisation: float | None = None  # a team's override of the matrix-work utilisation

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.micro_batch * self.seq_len


def matmul_utilisation(s: Setup) -> float:
    """Fraction of peak the matrix work reaches: rises with width, falls on H100-class chips."""
    if s.utilisation is not None:
        return s.utilisation
    chip = CHIPS[s.gpu]
    width = s.hidden / (s.hidden + WIDTH_HALF)
    return UTIL_WIDE * width * chip.generation * STACK.get(s.stack, 1.0)


def attention_seconds_per_token(s: Setup) -> float:
    """Attention score work per token: 4·L·d·seq FLOPs forward+backward for every key it sees
    (×3 with backward); FlashAttention skips the causal half, eager attention does not."""
    chip = CHIPS[s.gpu]
    flash = chip.flash_attention if s.flash_attention is None else s.flash_attention
    flops = (6.0 if flash else 12.0) * s.layers * s.hidden * s.seq_len
    return flops / (chip.peak_tflops * 1e12 * ATTN_UTIL[flash] * chip.generation)


def micro_batch_seconds(s: Setup) -> float:
    """Wall time of one micro-batch on one GPU (forward, backward, recompute when on)."""
    chip = CHIPS[s.gpu]
    tokens = s.tokens_per_micro_batch
    matmul = FLOPS_PER_PARAM[s.method] * s.params / (
        chip.peak_tflops * 1e12 * matmul_utilisation(s))
    gpu = tokens * (matmul + attention_seconds_per_token(s))
    passes = 2.0
    if s.gradient_checkpointing:
        gpu *= CHECKPOINTING[s.method]
        passes = 3.0
    bandwidth = chip.bandwidth_gbs * 1e9
    if s.method == "qlora":
        gpu += passes * s.params * DEQUANT_BYTES_PER_PARAM / bandwidth
    if s.method == "full" and s.sharded:
        gpu += s.params / s.n_gpus * SHARDED_BYTES_PER_PARAM / bandwidth
    launch = s.layers * LAUNCH_S_PER_LAYER * (passes / 2.0)
    if s.stack == "tuned":
        launch /= 2.0  # fused and compiled: fewer, larger kernels
    # The CPU launches kernels ahead of the GPU: whichever is slower sets the pace; where they
    # are close, each waits on the other part of the time (a soft maximum).
    return (gpu ** 4 + launch ** 4) ** 0.25


def scaling_efficiency(n_gpus: int, interconnect: str, method: str) -> float:
    """Per-GPU throughput on n GPUs relative to one, for data-parallel training.

    Published: 7B LoRA on 8×A10G over PCIe scaled at ~92% and QLoRA at ~75% (h2o-llmstudio
    #448; QLoRA's gradients wait on dequantisation); within an NVLink node tuned stacks are
    near-linear (llm-foundry's per-GPU rate is flat from 8 to 64 GPUs); across nodes without a
    fast fabric, Qwen-7B LoRA on 2×2 A100s ran at 56% per GPU of one A100. Full fine-tuning over
    PCIe moves the whole gradient every step: we take the QLoRA figure, unmeasured.
    The multi-GPU strategy (which of these applies, sharding) is decided elsewhere.
    """
    if n_gpus <= 1:
        return 1.0
    if interconnect == "nvlink":
        return 0.95
    if interconnect == "network":
        return 0.56
    return {"lora": 0.92, "qlora": 0.75}.get(method, 0.75)


def tokens_per_s_per_gpu(s: Setup) -> float:
    """Training tokens per second on each GPU of the run."""
    rate = s.tokens_per_micro_batch / micro_batch_seconds(s)
    return rate * scaling_efficiency(s.n_gpus, s.interconnect, s.method)
