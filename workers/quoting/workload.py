"""How much work a request is, and how much GPU memory it needs: pure arithmetic with published
rules of thumb, each named where it is used."""

from __future__ import annotations

import math
from dataclasses import dataclass

from schemas.config import TeamConfig
from schemas.spec import TrainRequest
from training.recipes.builtin import BUILTIN_TOKENS_PER_ROW, builtin_rows

# When neither `samples` nor `max_steps` bounds the run and the data is not a bundled set, we
# cannot read the dataset from here; quote this many samples and say so in the notes.
DEFAULT_SAMPLES = 10_000

# Bytes per parameter of model state (mixed-precision AdamW accounting, QLoRA paper for NF4).
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
    kv_width: int = 0  # keys/values per token per layer (grouped-query attention); 0: hidden

    @property
    def kv(self) -> int:
        return self.kv_width or self.hidden


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
    batch_size: int = 1  # sequences per optimizer step, across all GPUs

    def flops_per_token(self, checkpointing: bool) -> float:
        n, s = self.shape, self.seq_len
        per_param = 6.0 if self.method == "full" else 4.0  # 6·N full, 4·N LoRA (no weight grads)
        attention = 12.0 * n.layers * n.hidden * s  # PaLM accounting, forward and backward
        if checkpointing:
            # Recomputation replays one forward: +2·N, and a third of the attention term.
            per_param += 2.0
            attention *= 4.0 / 3.0
        return per_param * n.params + attention


def shape_of(request: TrainRequest, config: TeamConfig) -> Shape:
    info = config.models.get(request.model)
    if info is not None:
        return Shape(info.params_b * 1e9, info.layers, info.hidden, info.kv_width)
    return shape_for_params((request.params_b or 7.0) * 1e9)


def shape_for_params(params: float) -> Shape:
    """A bare size: a decoder has ~12·L·d² parameters with d/L ≈ 128 in today's models
    (Llama-2-7B: 4096/32), so d = (128·N/12)^(1/3)."""
    hidden = max(64, int((128.0 * params / 12.0) ** (1.0 / 3.0)))
    layers = max(1, round(hidden / 128))
    return Shape(params, layers, hidden)


def trainable_rows(request: TrainRequest) -> int | None:
    """The rows the recipe can train on when the data is a bundled set (its rows less the
    `eval_samples` held out for evaluation, as the recipe splits them); None when unknown.
    A `samples=` or `num_tasks=` above this is cut to it by the recipe, so the quote cuts it too."""
    rows = builtin_rows(request.data)
    if rows is None:
        return None
    return max(0, rows - (request.eval_samples or 0))


def packed_steps(request: TrainRequest, rows: int, tokens_per_row: float) -> int:
    """The optimizer steps the recipe runs on a bundled set: the rows it keeps (samples=, at
    most the trainable rows) packed end to end into seq_len sequences, batch_size sequences a
    step, over the epochs, then max_steps (training/recipes/data.py prepare)."""
    kept = min(request.samples or rows, rows)
    sequences = max(1, math.ceil(kept * tokens_per_row / request.seq_len))
    steps = max(1, math.ceil(sequences * request.epochs / request.batch_size))
    return steps if request.max_steps is None else min(steps, request.max_steps)


def work_of(request: TrainRequest, config: TeamConfig) -> Work:
    shape = shape_of(request, config)
    rows = trainable_rows(request)
    per_row = BUILTIN_TOKENS_PER_ROW.get(request.data)
    if rows is not None and per_row is not None:
        # Every step is batch_size full seq_len sequences (packing pads only the last one).
        steps = packed_steps(request, rows, per_row)
        tokens = float(steps * request.batch_size * request.seq_len)
        return Work(shape, request.method, request.precision, request.seq_len, tokens, steps,
                    False, request.batch_size)
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
    return Work(shape, request.method, request.precision, request.seq_len, tokens, steps, assumed,
                request.batch_size)


@dataclass(frozen=True)
class Memory:
    per_gpu_gb: float
    total_gb: float  # before sharding
    sharded: bool


def memory_need(work: Work, gpu_count: int, checkpointing: bool, sequences: int = 1) -> Memory:
    """GPU memory per GPU: model state (sharded over the GPUs only for full fine-tuning, which
    runs FSDP; LoRA and QLoRA replicate the frozen model on each GPU) plus activations for a
    micro-batch of `sequences` sequences."""
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
    acts *= sequences
    sharded = work.method == "full" and gpu_count > 1
    per_gpu_state = state / gpu_count if sharded else state
    return Memory(
        per_gpu_gb=(per_gpu_state + acts) / 1e9 + OVERHEAD_GB,
        total_gb=(state + acts) / 1e9 + OVERHEAD_GB,
        sharded=sharded,
    )


# The agent packs a micro-batch up to this many tokens (training/recipes/model.py micro_batch).
MICRO_BATCH_TOKENS = 16384


def micro_batch(work: Work, gpu_count: int, checkpointing: bool, gpu_memory_gb: float) -> int:
    """Sequences per micro-batch on each GPU: the agent's rule (the largest divisor of the batch
    with at most 16k tokens), and no more than fits the GPU's memory. Throughput depends on it:
    one 256-token sequence per micro-batch leaves the GPU waiting on kernel launches."""
    per_gpu = max(1, math.ceil(work.batch_size / gpu_count))
    best = 1
    for d in range(1, per_gpu + 1):
        if per_gpu % d or d * work.seq_len > MICRO_BATCH_TOKENS:
            continue
        if memory_need(work, gpu_count, checkpointing, d).per_gpu_gb <= gpu_memory_gb:
            best = d
    return best
