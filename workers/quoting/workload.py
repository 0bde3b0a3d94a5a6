"""How much work a request is, and how much GPU memory it needs: pure arithmetic with the rules of
thumb from FACTS.md, each named where it is used."""

from __future__ import annotations

import math
from dataclasses import dataclass

from schemas.config import TeamConfig
from schemas.spec import TrainRequest

# When neither `samples` nor `max_steps` bounds the run we cannot read the dataset from here;
# quote this many samples and say so in the notes.
DEFAULT_SAMPLES = 10_000

# Bytes per parameter of model state (FACTS.md "Memory, bytes per parameter").
FULL_BYTES_PER_PARAM = 17.0  # AdamW, mixed precision: 16-18 (weights, grads, 2 moments, master)
FULL_BYTES_PER_PARAM_FP32 = 16.0  # fp32 weights and grads, two fp32 moments, no master copy
FROZEN_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp32": 4.0}  # LoRA's frozen base weights
QLORA_BYTES_PER_PARAM = 0.58  # 4-bit NF4 weights with their quantisation constants: 0.55-0.6
# LoRA adapters (r=16 on every linear layer) are ~1% of the parameters, each carrying its weight,
# gradient and two fp32 Adam moments.
ADAPTER_FRACTION = 0.01
ADAPTER_BYTES = 16.0
# Activations per token, per layer, per unit of hidden size, in bf16, micro-batch of one sequence:
# ~34 bytes without recomputation (Korthikanti et al. 2022, attention scores kept out by
# FlashAttention); with checkpointing only each layer's input (2 bytes) is kept, plus one layer's
# full activations while it is recomputed.
ACT_BYTES = 34.0
ACT_BYTES_CHECKPOINTED = 2.0
# CUDA context, cuBLAS workspaces and allocator fragmentation, per GPU.
OVERHEAD_GB = 1.5


@dataclass(frozen=True)
class Shape:
    params: float
    layers: int
    hidden: int


@dataclass(frozen=True)
class Work:
    """A request's work before it meets an instance."""

    shape: Shape
    method: str
    precision: str
    seq_len: int
    tokens: float
    steps: int
    samples_assumed: bool

    def flops_per_token(self, checkpointing: bool) -> float:
        n, s = self.shape, self.seq_len
        per_param = 6.0 if self.method == "full" else 4.0  # FACTS.md: 6·N full, 4·N LoRA
        attention = 12.0 * n.layers * n.hidden * s  # PaLM accounting, forward and backward
        if checkpointing:
            # Recomputation replays one forward: +2·N, and a third of the attention term.
            per_param += 2.0
            attention *= 4.0 / 3.0
        return per_param * n.params + attention


def shape_of(request: TrainRequest, config: TeamConfig) -> Shape:
    info = config.models.get(request.model)
    if info is not None:
        return Shape(info.params_b * 1e9, info.layers, info.hidden)
    params = (request.params_b or 7.0) * 1e9
    # A bare size: a decoder has ~12·L·d² parameters with d/L ≈ 128 in today's models
    # (Llama-2-7B: 4096/32), so d = (128·N/12)^(1/3).
    hidden = max(64, int((128.0 * params / 12.0) ** (1.0 / 3.0)))
    layers = max(1, round(hidden / 128))
    return Shape(params, layers, hidden)


def work_of(request: TrainRequest, config: TeamConfig) -> Work:
    shape = shape_of(request, config)
    samples = request.samples
    assumed = samples is None and request.max_steps is None
    if samples is None:
        samples = DEFAULT_SAMPLES if request.max_steps is None else (
            request.max_steps * request.batch_size
        )
    steps = math.ceil(samples * request.epochs / request.batch_size)
    if request.max_steps is not None and request.max_steps < steps:
        steps = request.max_steps
        tokens = float(steps * request.batch_size * request.seq_len)
    else:
        tokens = float(samples * request.seq_len * request.epochs)
    return Work(shape, request.method, request.precision, request.seq_len, tokens, steps, assumed)


@dataclass(frozen=True)
class Memory:
    per_gpu_gb: float
    total_gb: float  # before sharding
    sharded: bool


def memory_need(work: Work, gpu_count: int, checkpointing: bool) -> Memory:
    """GPU memory per GPU: model state (sharded over the GPUs only for full fine-tuning, which
    runs FSDP; LoRA and QLoRA replicate the frozen model on each GPU) plus activations."""
    n = work.shape.params
    if work.method == "full":
        state = n * (FULL_BYTES_PER_PARAM_FP32 if work.precision == "fp32" else FULL_BYTES_PER_PARAM)
    else:
        base = QLORA_BYTES_PER_PARAM if work.method == "qlora" else FROZEN_BYTES[work.precision]
        state = n * base + n * ADAPTER_FRACTION * ADAPTER_BYTES
    width = 2.0 if work.precision == "fp32" else 1.0
    per_layer = ACT_BYTES * work.shape.hidden * work.seq_len * width
    if checkpointing:
        acts = ACT_BYTES_CHECKPOINTED * work.shape.hidden * work.seq_len * width * work.shape.layers
        acts += per_layer
    else:
        acts = per_layer * work.shape.layers
    sharded = work.method == "full" and gpu_count > 1
    per_gpu_state = state / gpu_count if sharded else state
    return Memory(
        per_gpu_gb=(per_gpu_state + acts) / 1e9 + OVERHEAD_GB,
        total_gb=(state + acts) / 1e9 + OVERHEAD_GB,
        sharded=sharded,
    )
