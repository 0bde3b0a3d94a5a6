"""The policy the rl and eval stages start from, and sampling completions from it.

`init_from` names an sft result (or any trained output): a folder holding a LoRA adapter
(`adapter_config.json`, continued as the trainable adapter) or a whole model (`config.json`,
loaded as the base and given a fresh adapter when the method is LoRA). It may be a local path,
`file://` or an `s3://` prefix, which is downloaded first. Without it the spec's base model is
the start, as in sft.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

import torch

from schemas.errors import UserError
from training.recipes.model import Placement, load_model

log = logging.getLogger("trainops.recipe")


def fetch_init(init_from: str | None, workdir: Path) -> Path | None:
    """A local folder with the starting adapter or model, downloading it when it is in a store."""
    if not init_from:
        return None
    if init_from.startswith("s3://"):
        from schemas.store import open_store

        parsed = urlparse(init_from.rstrip("/"))
        store, prefix = open_store(f"s3://{parsed.netloc}"), parsed.path.strip("/")
        keys = [k for k in store.list(prefix + "/") if not k.endswith("MANIFEST.json")]
        if not keys:
            raise UserError(f"init_from {init_from} holds no files; give the final/ folder of an sft job")
        local = Path(workdir) / "init"
        for key in keys:
            store.download_file(key, local / key[len(prefix) + 1:])
        return local
    path = Path(init_from[len("file://"):] if init_from.startswith("file://") else init_from).expanduser()
    if not path.is_dir():
        raise UserError(f"init_from {init_from} is not a folder; give the final/ folder of an sft job "
                        "(a LoRA adapter or a model), local, file:// or s3://")
    return path


def load_policy(spec, tokenizer, where: Placement, init_dir: Path | None):
    """The model to train or score: the spec's base with LoRA, or the init_from adapter/model."""
    if init_dir is None:
        return load_model(spec, tokenizer, where)
    if (init_dir / "adapter_config.json").exists():
        from peft import PeftModel

        if spec.method != "lora":
            raise UserError(f"init_from {spec.init_from} is a LoRA adapter; continue it with method=lora "
                            f"(not {spec.method}), or start from a merged model")
        base = load_model(spec.model_copy(update={"method": "full"}), tokenizer, where)
        model = PeftModel.from_pretrained(base, str(init_dir), is_trainable=True)
        log.info("starting from the adapter in %s", init_dir)
        return model
    if (init_dir / "config.json").exists():
        log.info("starting from the model in %s", init_dir)
        return load_model(spec.model_copy(update={"model": str(init_dir)}), tokenizer, where)
    raise UserError(f"init_from {spec.init_from} holds neither adapter_config.json nor config.json; "
                    "give the final/ folder of an sft job")


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], n: int, max_new_tokens: int, temperature: float,
           device: torch.device, greedy: bool = False) -> list[list[tuple[str, int]]]:
    """For each prompt, n completions (one when greedy) as (text, tokens generated incl. the end
    token)."""
    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"  # generation continues from the right edge
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    out = model.generate(
        **batch, do_sample=not greedy, temperature=None if greedy else temperature, top_k=None, top_p=None,
        num_return_sequences=1 if greedy else n, max_new_tokens=max_new_tokens, use_cache=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model.train(was_training)
    new = out[:, batch["input_ids"].shape[1]:]
    results: list[list[tuple[str, int]]] = []
    per = 1 if greedy else n
    for i in range(len(prompts)):
        group = []
        for row in new[i * per:(i + 1) * per]:
            ends = (row == tokenizer.eos_token_id).nonzero()
            length = int(ends[0]) + 1 if len(ends) else len(row)
            group.append((tokenizer.decode(row[:length], skip_special_tokens=True), length))
        results.append(group)
    return results
