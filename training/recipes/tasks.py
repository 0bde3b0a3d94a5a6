"""Tasks for the rl and eval stages, and the held-out split every stage agrees on. No torch.

The split is a pure function of (the data's content, seed, eval_samples): `eval_samples` rows are
held out, the rest are trained on (sft, rl, best_of_n). The prep stage writes it, with the token
cache, under the cache folder; later stages read it there, or make the same split themselves
when run alone, so a stage never depends on another having run on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.recipes.data import DataError, load_rows
from training.recipes.rewards import prompt_of, reference

_HELD_OUT_STREAM = 7  # a seed stream of its own: the split does not move when other draws change


@dataclass
class Split:
    train: list[dict]
    heldout: list[dict]
    data_hash: str  # of the whole data set
    key: str  # of this split: data hash, seed and eval_samples

    def train_part(self) -> tuple[list[dict], str]:
        """The training rows with a content key of their own (token caches must not collide)."""
        return self.train, hashlib.sha256(f"{self.key}:train".encode()).hexdigest()


def split(rows: list[dict], data_hash: str, spec) -> Split:
    held = int(getattr(spec, "eval_samples", 0) or 0)
    if held >= len(rows):
        raise DataError(f"eval_samples={held} would hold out all {len(rows)} rows of {spec.data}; "
                        f"give eval_samples below {len(rows)}")
    key = hashlib.sha256(f"{data_hash}:{spec.seed}:{held}".encode()).hexdigest()[:24]
    order = np.random.default_rng([spec.seed, _HELD_OUT_STREAM]).permutation(len(rows))
    out = set(order[:held].tolist())
    return Split([r for i, r in enumerate(rows) if i not in out],
                 [r for i, r in enumerate(rows) if i in out], data_hash, key)


def split_dir(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / f"split-{key}"


def write_split(parts: Split, cache_dir: Path) -> Path:
    """train.jsonl + heldout.jsonl + split.json, written atomically (the folder appears whole)."""
    final = split_dir(cache_dir, parts.key)
    if (final / "split.json").exists():
        return final
    tmp = final.with_name(f".{final.name}.{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", parts.train), ("heldout", parts.heldout)):
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    (tmp / "split.json").write_text(json.dumps(
        {"data_hash": parts.data_hash, "key": parts.key, "train": len(parts.train),
         "heldout": len(parts.heldout)}, indent=2))
    try:
        os.replace(tmp, final)
    except OSError:  # another process wrote it first: same content
        pass
    return final


def load_split(spec, cache_dir: Path) -> Split:
    """The split prep wrote, or the same split made now."""
    rows, data_hash = load_rows(spec.data)
    parts = split(rows, data_hash, spec)
    folder = split_dir(cache_dir, parts.key)
    if (folder / "split.json").exists():
        read = [[json.loads(x) for x in (folder / f"{n}.jsonl").read_text().splitlines() if x.strip()]
                for n in ("train", "heldout")]
        return Split(read[0], read[1], data_hash, parts.key)
    return parts


def training_tasks(spec, cache_dir: Path) -> list[dict]:
    """The rows rl and best_of_n sample from: the training split, `num_tasks` of them (a seeded
    choice) when the spec caps it. Every row must have a prompt."""
    rows = load_split(spec, cache_dir).train
    if spec.num_tasks and spec.num_tasks < len(rows):
        chosen = np.sort(np.random.default_rng([spec.seed, 3]).permutation(len(rows))[: spec.num_tasks])
        rows = [rows[i] for i in chosen]
    return [_task(row, n) for n, row in enumerate(rows, start=1)]


def heldout_tasks(spec, cache_dir: Path) -> list[dict]:
    if not getattr(spec, "eval_samples", 0):
        raise DataError("the eval stage scores held-out rows: set eval_samples (e.g. eval_samples=32) "
                        "so that many rows are kept out of training")
    return [_task(row, n) for n, row in enumerate(load_split(spec, cache_dir).heldout, start=1)]


def _task(row: dict, number: int) -> dict:
    if "prompt" not in row and "messages" not in row:
        raise DataError(f"task row {number} has neither prompt nor messages; keys: {sorted(row)}")
    return {**row, "prompt": prompt_of(row), "reference": reference(row)}


def prompt_text(tokenizer, prompt: str) -> str:
    """What the model sees before its completion: the chat template's user turn and the
    assistant's opening, as the sft stage renders a prompt/completion row."""
    if not tokenizer.chat_template:
        return prompt
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
