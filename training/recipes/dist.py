"""Data parallelism for the recipes: the process group, the strategy, and agreeing across ranks.

`torchrun` (one process per GPU) sets RANK/WORLD_SIZE/LOCAL_RANK; without them this is one
process and nothing here talks to anyone. Backend: nccl on CUDA, gloo on CPU (tests and laptops).

Strategies (docs/multi-gpu.md):
    single  one process, the model as it is.
    ddp     a full replica per GPU, gradients all-reduced: LoRA/QLoRA on a base that fits a GPU.
    fsdp    FSDP2 `fully_shard` per decoder layer and at the root: parameters, gradients and
            optimizer state sharded across GPUs. Full fine-tuning, and LoRA on a base that does
            not fit one GPU. Mixed precision: parameters in the spec's dtype for compute,
            gradients reduced in fp32.
Both DDP and FSDP average gradients over ranks; the recipe multiplies each rank's loss by the
world size so the step's gradient is the sum over the global batch, as in one process.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from schemas.errors import UserError

log = logging.getLogger("trainops.recipe")


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")

    def all_sum(self, values: list[float]) -> list[float]:
        return self._reduce(values, dist.ReduceOp.SUM)

    def all_max(self, values: list[float]) -> list[float]:
        """What every rank agrees on: the largest value any rank put in (a stop, a save)."""
        return self._reduce(values, dist.ReduceOp.MAX)

    def _reduce(self, values: list[float], op) -> list[float]:
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device())
        dist.all_reduce(tensor, op=op)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


_context: Context | None = None


def context() -> Context:
    """This process's place; the process group is started on first use under torchrun."""
    global _context
    if _context is None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        _context = Context(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
        if world > 1 and not dist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(_context.local_rank)
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return _context


def close() -> None:
    global _context
    if dist.is_initialized():
        dist.destroy_process_group()
    _context = None


def strategy(spec, world: int) -> str:
    """The spec's strategy, or the default for its method; single whenever there is one process."""
    if world == 1:
        return "single"
    chosen = spec.strategy or ("fsdp" if spec.method == "full" else "ddp")
    if chosen == "single":
        raise UserError(f"strategy=single runs one process, but {world} were started; "
                        "use strategy=ddp or fsdp, or nproc_per_node=1")
    if chosen == "fsdp" and spec.method == "qlora":
        raise UserError("strategy=fsdp does not shard QLoRA's 4-bit base; use strategy=ddp or method=lora")
    return chosen


def wrap(model, chosen: str, ctx: Context, compute_dtype: torch.dtype | None):
    """The model as the strategy trains it (the unwrapped model stays reachable for saving)."""
    if chosen == "single":
        return model
    if chosen == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [ctx.local_rank] if torch.cuda.is_available() else None
        return DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32) \
        if compute_dtype is not None else MixedPrecisionPolicy()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    blocks = set(getattr(base, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in blocks]
    for layer in layers:  # one all-gather per decoder layer: memory ~ one layer's full weights
        fully_shard(layer, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    log.info("fsdp: %d blocks sharded over %d ranks", len(layers), ctx.world)
    return model


def sync_gradients(model, chosen: str, last: bool):
    """Gradient accumulation: reduce across ranks only on the step's last micro batch."""
    if chosen == "ddp" and not last:
        return model.no_sync()
    if chosen == "fsdp":
        model.set_requires_gradient_sync(last)
    return contextlib.nullcontext()
