"""The prep stage: read the data once, hold out `eval_samples` rows, tokenise the training rows
into the shared cache, and publish the split as the stage's output.

Later stages on the machine read what it wrote (the split folder and the token cache under the
cache folder, both keyed by content), so sft's data phase is a cache hit; a stage run alone
makes the very same split itself. One step: the work is reading and tokenising, not training.
The output (final/) holds train.jsonl, heldout.jsonl and prep.json (row and token counts, the
data's hash, the split's key), so a job's record shows exactly which rows were held out.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from training.recipes.base import ConstantLR, Recipe
from training.recipes.data import load_rows, tokenize_cached
from training.recipes.model import load_tokenizer
from training.recipes.rewards import check_reward_spec
from training.recipes.rl import state_json
from training.recipes.tasks import split, write_split

log = logging.getLogger("trainops.recipe")


class PrepRecipe(Recipe):
    stage = "prep"

    def __init__(self, spec, workdir: Path, cache_dir: Path | None = None):
        super().__init__(spec, workdir, cache_dir)
        self.total_steps = 1
        self.scheduler = ConstantLR(0.0)
        self.metrics: dict = {"stage": "prep"}
        self.summary: dict = {}

    def setup(self, resume_dir: Path | None = None, on_phase: Callable[[str], None] = lambda p: None) -> None:
        on_phase("setup")
        self.tokenizer = load_tokenizer(self.spec)

    def train(self, on_step) -> str:
        if self.step >= self.total_steps:
            return "done"
        spec = self.spec
        rows, data_hash = load_rows(spec.data)
        parts = split(rows, data_hash, spec)
        folder = write_split(parts, self.cache_dir)
        train_rows, train_hash = parts.train_part() if spec.eval_samples else (rows, data_hash)
        examples = tokenize_cached(train_rows, train_hash, self.tokenizer, self.cache_dir)
        tokens = int(sum(len(ids) for ids, _ in examples))
        if _needs_reward(spec):  # a bad reward fails here, before the long stages start
            check_reward_spec(spec.reward, (parts.heldout or parts.train)[0])
        self.summary = {"stage": "prep", "data": spec.data, "data_hash": data_hash, "split_key": parts.key,
                        "rows": len(rows), "train_rows": len(parts.train), "heldout_rows": len(parts.heldout),
                        "train_tokens": tokens, "split_dir": str(folder)}
        log.info("prep: %d rows, %d held out, %d training tokens cached", len(rows), len(parts.heldout), tokens)
        self.step, self.tokens_seen = 1, tokens
        self.metrics = {"stage": "prep", "rows": len(rows), "heldout_rows": len(parts.heldout)}
        reason = on_step(self.step, None, tokens)
        return reason or "done"

    def save_checkpoint(self) -> Path:
        local = self.workdir / "checkpoints" / f"step-{self.step}"
        local.mkdir(parents=True, exist_ok=True)
        (local / "state.json").write_text(state_json(self.spec, self.step, None, stage="prep"))
        return local

    def save_final(self) -> Path:
        out = self.workdir / "final"
        out.mkdir(parents=True, exist_ok=True)
        folder = Path(self.summary["split_dir"])
        for name in ("train.jsonl", "heldout.jsonl"):
            shutil.copy2(folder / name, out / name)
        (out / "prep.json").write_text(json.dumps(self.summary, indent=2))
        return out

    def cleanup(self) -> None:
        pass


def _needs_reward(spec) -> bool:
    """The reward is checked at prep only when a later stage will score with it."""
    stages = getattr(spec, "stages", None)
    return stages is None or any(s in ("rl", "eval") for s in stages)


if __name__ == "__main__":
    import sys

    from training.recipes import runner

    sys.exit(runner.main(PrepRecipe))
