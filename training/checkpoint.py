"""What a recipe checkpoint holds, written to and read from a local folder.

`weights.safetensors` (only trainable parameters: the LoRA adapter, or the whole model for full
fine-tuning), `trainer_state.pt` (optimizer, scheduler, RNG states of python, numpy, torch and
CUDA) and `state.json` (step, data position, the spec's hash and training fields). Uploading,
manifests and keep-last-K live in training/sync.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from schemas.errors import UserError


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu").contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


def save(local_dir: Path, *, model, optimizer, scheduler, step: int, spec, loss: float | None) -> Path:
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(local_dir / "weights.safetensors"))
    rng = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
               local_dir / "trainer_state.pt")
    state = {
        "step": step,
        "data_position": {"step": step, "sequences_seen": step * spec.batch_size},
        "loss": loss,
        "spec_hash": spec.spec_hash(),
        "training_fields": {k: getattr(spec, k) for k in spec.TRAINING_FIELDS},
    }
    (local_dir / "state.json").write_text(json.dumps(state, indent=2, default=str))
    return local_dir


def load(local_dir: Path, *, model, optimizer, scheduler) -> int:
    """Restore into an already set-up recipe; returns the step to continue after."""
    local_dir = Path(local_dir)
    weights = load_file(str(local_dir / "weights.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise UserError(f"checkpoint weights do not fit this model (e.g. {missing[0]}); was the model changed?")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    blob = torch.load(local_dir / "trainer_state.pt", weights_only=False, map_location="cpu")
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    rng = blob["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((local_dir / "state.json").read_text())["step"]
