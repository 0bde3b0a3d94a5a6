"""How a run uses an instance's GPUs, as the agent will run it (issue #11). Pure arithmetic.

- single: one GPU, one process.
- ddp: every GPU holds the whole model state (replicated) and trains on its share of the batch;
  gradients are averaged after each step.
- fsdp: parameters, gradients and optimizer state are divided over the GPUs (FSDP2
  `fully_shard`); each GPU holds its shard plus its own activations plus one layer gathered
  whole while that layer runs (two while the next is prefetched, in backward).

The layout picked for an instance is the fastest that fits its memory: DDP when the replicated
state fits (it moves the least data), else FSDP, each first without gradient checkpointing. A
sweep runs its runs side by side on groups of GPUs; the group size picked is the one whose waves
finish first (docs/stages-and-gpus.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from workers.quoting.catalog import Instance, link_gbs
from workers.quoting.throughput import Setup, micro_batch_seconds, scaling_efficiency
from workers.quoting.workload import (
    FROZEN_BYTES,
    MICRO_BATCH_TOKENS,
    OVERHEAD_GB,
    QLORA_BYTES_PER_PARAM,
    Memory,
    Work,
    memory_need,
)


@dataclass(frozen=True)
class Layout:
    """One run's use of `gpus` GPUs, and what that needs and gives."""

    strategy: str  # single | ddp | fsdp
    gpus: int
    checkpointing: bool
    memory: Memory
    micro_batch: int
    tokens_per_s: float  # the run's training throughput on its GPUs (before calibration factor)
    scaling: float  # per-GPU throughput relative to the same run on one GPU


def _weight_bytes(work: Work) -> float:
    return QLORA_BYTES_PER_PARAM if work.method == "qlora" else FROZEN_BYTES[work.precision]


@lru_cache(maxsize=256)
def _parts(work: Work, checkpointing: bool) -> tuple[float, float]:
    """(model state GB, activations GB per sequence) as workload.memory_need counts them."""
    state = memory_need(work, 1, checkpointing, 0).total_gb - OVERHEAD_GB
    return state, memory_need(work, 1, checkpointing, 1).total_gb - OVERHEAD_GB - state


def memory_for(work: Work, gpus: int, strategy: str, checkpointing: bool,
               sequences: int = 1) -> Memory:
    """Memory per GPU under a strategy: replicated (single, ddp) or sharded (fsdp)."""
    state_gb, acts_gb = _parts(work, checkpointing)
    acts_gb *= sequences
    total = state_gb + acts_gb + OVERHEAD_GB
    if strategy != "fsdp":
        return Memory(per_gpu_gb=total, total_gb=total, sharded=False)
    layer_gb = 2.0 * work.shape.params * _weight_bytes(work) / work.shape.layers / 1e9
    return Memory(per_gpu_gb=state_gb / gpus + acts_gb + layer_gb + OVERHEAD_GB,
                  total_gb=total, sharded=True)


def _micro(work: Work, gpus: int, strategy: str, checkpointing: bool, gpu_memory_gb: float) -> int:
    """The agent's rule (workload.micro_batch) under this strategy's memory."""
    per_gpu = max(1, math.ceil(work.batch_size / gpus))
    best = 1
    for d in range(1, per_gpu + 1):
        if per_gpu % d or d * work.seq_len > MICRO_BATCH_TOKENS:
            continue
        if memory_for(work, gpus, strategy, checkpointing, d).per_gpu_gb <= gpu_memory_gb:
            best = d
    return best


def gather_seconds(work: Work, inst: Instance, gpus: int, checkpointing: bool) -> float:
    """FSDP of frozen weights (LoRA, QLoRA): every micro-batch all-gathers each layer's weights
    in forward, again in backward (and in the recompute): (g-1)/g of the weights per pass."""
    passes = 3.0 if checkpointing else 2.0
    moved = passes * work.shape.params * _weight_bytes(work) * (gpus - 1) / gpus
    return moved / (link_gbs(inst) * 1e9)


def layout(work: Work, inst: Instance, gpus: int, setup: Callable[..., Setup]) -> Layout | None:
    """The fastest way to run one run on `gpus` of the instance's GPUs; None when none fits.
    `setup(micro_batch=, gradient_checkpointing=, n_gpus=, sharded=)` builds the throughput
    model's Setup for the rest of the run's shape."""
    kinds = ["single"] if gpus == 1 else ["ddp", "fsdp"]
    best: Layout | None = None
    for checkpointing in (False, True):
        for strategy in kinds:
            if strategy == "fsdp" and best is not None and best.micro_batch == _micro(
                    work, gpus, strategy, checkpointing, math.inf):
                continue  # DDP already runs the largest micro-batch: sharding only adds work
            mem = memory_for(work, gpus, strategy, checkpointing)
            if mem.per_gpu_gb > inst.gpu_memory_gb:
                continue
            micro = _micro(work, gpus, strategy, checkpointing, inst.gpu_memory_gb)
            s = setup(micro_batch=micro, gradient_checkpointing=checkpointing, n_gpus=gpus,
                      sharded=strategy == "fsdp" and work.method == "full")
            step_s = micro_batch_seconds(s)
            if strategy == "fsdp" and work.method != "full":
                gather = gather_seconds(work, inst, gpus, checkpointing)
                step_s = (step_s ** 4 + gather ** 4) ** 0.25  # overlapped with compute
            efficiency = scaling_efficiency(gpus, inst.interconnect, work.method)
            per_gpu = s.tokens_per_micro_batch / step_s * efficiency
            scaling = 1.0
            if gpus > 1:  # against the same micro-batch on one GPU, nothing shared
                scaling = per_gpu * micro_batch_seconds(setup(
                    micro_batch=micro, gradient_checkpointing=checkpointing, n_gpus=1,
                    sharded=False)) / s.tokens_per_micro_batch
            found = Layout(strategy, gpus, checkpointing, mem, micro, per_gpu * gpus, scaling)
            if best is None or found.tokens_per_s > best.tokens_per_s:
                best = found
        if best is not None:
            return best  # recomputation only when nothing fits without it
    return None


def group_sizes(gpu_count: int, runs: int) -> list[int]:
    """GPUs per run the agent can give a sweep: it starts `nproc_per_node` processes and gives
    each of R runs nproc // R GPUs (at least one), runs beyond the slots queueing. So a run gets
    g GPUs with all R runs side by side (g·R <= GPUs), or one GPU each, in waves."""
    if runs <= 1:
        return [gpu_count]
    return [g for g in range(1, gpu_count + 1) if g == 1 or g * runs <= gpu_count]


@dataclass(frozen=True)
class Plan:
    """All runs of a job on one instance: each run's layout, and in how many waves they go."""

    layout: Layout
    groups: int  # runs side by side
    waves: int
    train_s: list[float]  # each run's training seconds on its group
    wall_s: float  # training wall time, all waves

    @property
    def nproc(self) -> int:
        """GPUs the agent starts processes on (JobSpec.nproc_per_node)."""
        return self.layout.gpus * min(self.groups, len(self.train_s))


def plan_runs(run_tokens: list[float], inst: Instance,
              layout_for: Callable[[int], Layout | None], factor: float = 1.0,
              wave_overhead_s: float = 0.0) -> Plan | None:
    """The GPUs per run whose waves finish first, each wave paying `wave_overhead_s` (its final
    saves); ties: fewer GPUs per run, which scales best. A single run uses every GPU."""
    best: Plan | None = None
    for g in group_sizes(inst.gpu_count, len(run_tokens)):
        lay = layout_for(g)
        if lay is None:
            continue
        groups = inst.gpu_count // g
        train_s = [t / (lay.tokens_per_s * factor) for t in run_tokens]
        waves = math.ceil(len(run_tokens) / groups)
        wall = sum(max(train_s[w * groups:(w + 1) * groups]) for w in range(waves))
        plan = Plan(lay, groups, waves, train_s, wall)
        if best is None or wall + waves * wave_overhead_s < (
                best.wall_s + best.waves * wave_overhead_s) * (1 - 1e-9):
            best = plan
    return best


_METHOD_WORDS = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA"}


def _gb(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def _params(n: float) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def no_fit_reason(work: Work, inst: Instance, runs: int = 1,
                  alone: Layout | None = None) -> tuple[str, float]:
    """Why no layout fits (one line) and the memory per GPU the leanest one needs: sharded over
    every GPU with recomputation. `alone`: how one run of a sweep would fit by itself."""
    if runs > 1 and alone is not None:
        return (f"one run needs {alone.gpus} GPUs ({alone.strategy}) and the {runs} runs of the "
                f"sweep go side by side: {inst.label} fits {inst.gpu_count // alone.gpus} at "
                "once; sweep fewer values or pick a bigger instance", alone.memory.per_gpu_gb)
    many = inst.gpu_count > 1
    mem = memory_for(work, inst.gpu_count, "fsdp" if many else "single", True)
    what = f"{_METHOD_WORDS[work.method]} of {_params(work.shape.params)} params"
    if mem.sharded:
        need = f"needs ~{_gb(mem.total_gb)} GB, ~{_gb(mem.per_gpu_gb)} GB per GPU sharded"
    else:
        need = f"needs ~{_gb(mem.per_gpu_gb)} GB"
    each = " each" if many else ""
    return f"{what} {need}; {inst.label} has {inst.gpu_memory_gb:.0f} GB{each}", mem.per_gpu_gb
