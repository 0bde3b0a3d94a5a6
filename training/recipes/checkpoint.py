"""What a recipe checkpoint holds, written to and read from a local folder.

`weights.safetensors` (only trainable parameters: the LoRA adapter, or the whole model for full
fine-tuning), `optimizer.pt` (the optimizer state keyed by parameter name), `trainer_state.pt`
(scheduler, RNG states of python, numpy, torch and CUDA) and `state.json` (step, data position,
world size, the spec's hash and training fields). Uploading, manifests and keep-last-K live in
training/agent/sync.py.

Loading never unpickles code. Every GPU machine may write any job's checkpoints (one instance
role, docs/security.md), so a `.pt` file is untrusted input: a pickle can name any callable
and torch.load(weights_only=False) would call it on this machine. The `.pt` files hold only
tensors and plain values (the numpy RNG state as a tensor and ints, not an ndarray), and are
read with weights_only=True; anything else is refused with one line before it can run.

Consolidated, not sharded: weights and optimizer state are gathered to full tensors on rank 0
(`torch.distributed.checkpoint.state_dict` with full_state_dict), so a checkpoint taken on 8 GPUs
under FSDP resumes on 4, on 1, or under DDP. Saving and loading are collective: every rank calls
them; only rank 0 touches the files (loading broadcasts from rank 0).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from schemas.errors import UserError


def _options(ctx, **extra) -> StateDictOptions:
    return StateDictOptions(full_state_dict=True, cpu_offload=True, **extra)


def trainable_state(model, ctx) -> dict[str, torch.Tensor]:
    """Trainable parameters by name, full tensors on CPU on rank 0 (collective)."""
    state = get_model_state_dict(model, options=_options(ctx, ignore_frozen_params=True))
    return {n: t.contiguous() for n, t in state.items()} if ctx.main else {}


def full_state(model, ctx) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, full tensors on CPU on rank 0 (collective): the final model."""
    state = get_model_state_dict(model, options=_options(ctx))
    return state if ctx.main else {}


def save(local_dir: Path, *, model, optimizer, scheduler, step: int, spec, loss: float | None, ctx,
         strategy: str = "single") -> Path:
    """Written to `<local_dir>.tmp` and renamed when complete: a folder named step-N is whole."""
    weights = trainable_state(model, ctx)
    optim = get_optimizer_state_dict(model, optimizer, options=_options(ctx))
    local_dir = Path(local_dir)
    if ctx.main:
        tmp = local_dir.with_name(local_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(weights, str(tmp / "weights.safetensors"))
        torch.save(optim, tmp / "optimizer.pt")
        rng = {
            "python": random.getstate(),  # (version, 625 ints, None): plain values
            "numpy": _numpy_rng(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        torch.save({"scheduler": scheduler.state_dict(), "rng": rng}, tmp / "trainer_state.pt")
        state = {
            "step": step,
            "data_position": {"step": step, "sequences_seen": step * spec.batch_size},
            "loss": loss,
            "world_size": ctx.world,
            "strategy": strategy,
            "spec_hash": spec.spec_hash(),
            "training_fields": {k: getattr(spec, k) for k in spec.TRAINING_FIELDS},
        }
        (tmp / "state.json").write_text(json.dumps(state, indent=2, default=str))
        shutil.rmtree(local_dir, ignore_errors=True)
        os.replace(tmp, local_dir)
    ctx.barrier()
    return local_dir


def load(local_dir: Path, *, model, optimizer, scheduler, ctx, trainable: set[str]) -> int:
    """Restore into an already set-up (and wrapped) recipe; returns the step to continue after."""
    local_dir = Path(local_dir)
    weights = load_file(str(local_dir / "weights.safetensors"))  # small next to the optimizer
    missing = sorted(set(weights) ^ trainable)
    if missing:
        raise UserError(f"checkpoint weights do not fit this model (e.g. {missing[0]}); was the model changed?")
    broadcast = dict(broadcast_from_rank0=True) if ctx.distributed else {}
    set_model_state_dict(model, weights, options=_options(ctx, strict=False, **broadcast))
    optim = load_plain(local_dir / "optimizer.pt") if ctx.main or not ctx.distributed else {}
    set_optimizer_state_dict(model, optimizer, optim, options=_options(ctx, **broadcast))
    blob = load_plain(local_dir / "trainer_state.pt")
    scheduler.load_state_dict(blob["scheduler"])
    rng = blob["rng"]
    random.setstate(rng["python"])
    _set_numpy_rng(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"][: torch.cuda.device_count()])
    return json.loads((local_dir / "state.json").read_text())["step"]


def load_plain(path: Path):
    """torch.load with weights_only=True: tensors and plain values, never a callable. A file
    that names anything else (a planted pickle) is refused before any of it runs."""
    try:
        with torch.serialization.safe_globals(_LEGACY_NUMPY):
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise refused(f"{Path(path).parent.name}/{Path(path).name}", exc) from None


def refused(what: str, exc: Exception) -> UserError:
    """One line: which file, what it named, and what to do."""
    named = re.search(r"GLOBAL ([\w.]+)", str(exc))  # torch's wording varies; the name does not
    detail = f"it names {named.group(1)}" if named else "an object torch will not rebuild"
    return UserError(f"checkpoint file {what} is refused: it holds "
                     f"more than tensors and plain values ({detail}), and loading it could run code; "
                     "resume from another checkpoint or start the job from scratch")


def _numpy_rng() -> dict:
    """numpy's legacy RNG state as a tensor and plain numbers (an ndarray would need pickle)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _set_numpy_rng(state) -> None:
    if isinstance(state, dict):
        state = (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"],
                 state["has_gauss"], state["gauss"])
    np.random.set_state(state)


# Checkpoints written before this format kept numpy's RNG state as an ndarray. These are the
# only extra names such a file uses (the same list transformers allows for its own RNG file):
# numpy's array reconstructor and types, which build arrays and call nothing else.
_NP_CORE = getattr(np, "_core", None) or np.core
_LEGACY_NUMPY = [_NP_CORE.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
