"""Loading a model straight into FSDP shards: the whole model is read once, on rank 0, in CPU
memory; every rank builds the architecture without weights (PyTorch's meta device), shards it,
and receives only its own shards from rank 0.

Why: the naive way (every rank loads the whole model, then shards it) needs the full model once
per GPU, first in host memory and then on the GPU: 8 ranks x 140 GB for a 70B base in bf16,
while the quote (workers/quoting/strategy.py) counts each GPU's share only. This is the loading
the quote's FSDP memory figure assumes. docs/multi-gpu.md.

Same numbers as the naive way: rank 0 builds the real model (LoRA adapters included) under the
job's seed exactly as one process would, and everything else is copied from it, so a two-process
FSDP run matches one process step by step (tests/integration/training/test_parallel.py).
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

from training.recipes.model import Placement, load_model

log = logging.getLogger("trainops.recipe")


def load_sharded(spec, tokenizer, where: Placement, ctx, wrap):
    """(the FSDP-wrapped model, names of its trainable parameters, their count). `wrap` shards a
    model (training.recipes.dist.wrap with the strategy bound)."""
    # Rank 0's copy lives in host memory: the GPU only ever holds shards.
    real = load_model(spec, tokenizer, Placement(torch.device("cpu"), where.weight_dtype,
                                                 where.autocast)) if ctx.main else None
    with torch.random.fork_rng(devices=[]):  # the empty build must not move the job's RNG
        empty = load_model(spec, tokenizer, where, empty=True)
    trainable = {n for n, p in empty.named_parameters() if p.requires_grad}
    count = sum(p.numel() for p in empty.parameters() if p.requires_grad)
    model = wrap(empty)
    model.to_empty(device=where.device)  # this rank's shards, uninitialised
    full = real.state_dict() if real is not None else {}
    # strict: a weight rank 0 did not send would stay uninitialised memory; better to fail.
    set_model_state_dict(model, full, options=StateDictOptions(
        full_state_dict=True, broadcast_from_rank0=True, strict=True))
    # Buffers outside the state dict (the rotary embedding's frequencies) are whole on every
    # rank, not sharded: rank 0's values, sent to all.
    source = dict(real.named_buffers()) if real is not None else {}
    for name, buffer in model.named_buffers():
        if ctx.main:
            buffer.copy_(source[name])
        dist.broadcast(buffer, src=0)
    del real, full, source
    if ctx.main:
        log.info("fsdp: the model was read once on rank 0 and sent as shards to %d ranks", ctx.world)
    return model, trainable, count
