"""The eval stage: score a model or adapter on the held-out rows with the spec's reward.

The held-out rows are the `eval_samples` rows every other stage leaves out (training/recipes/
tasks.py). For each: one greedy completion (deterministic, so two evals of the same weights
agree) scored by the reward — mean reward and pass rate — and the loss of the reference answer
under the model (teacher-forced, completion tokens only, as sft computes it). It scores
`init_from` when given (within a pipeline, the stage before's output), else the base model.

A step is `batch_size` rows. Checkpoints hold the running sums (eval_state.json), so an
interrupted eval continues where it was. The final output is eval.json; the recipe's `metrics`
carry the figures with `stage: "eval"` for the job's metrics lines.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import torch

from training.recipes.base import ConstantLR, Recipe
from training.recipes.data import IGNORE, encode
from training.recipes.model import load_tokenizer, placement
from training.recipes.policy import fetch_init, load_policy, sample
from training.recipes.rewards import check_reward_spec
from training.recipes.rl import state_json
from training.recipes.tasks import heldout_tasks, prompt_text

log = logging.getLogger("trainops.recipe")
OnStep = Callable[[int, float, int], str | None]
KEEP_SAMPLES = 8  # completions shown in eval.json, so a person can see what the scores mean


class EvalRecipe(Recipe):
    stage = "eval"

    def __init__(self, spec, workdir: Path, cache_dir: Path | None = None):
        super().__init__(spec, workdir, cache_dir)
        self.scheduler = ConstantLR(0.0)  # nothing is trained
        self.sums = {"n": 0, "reward": 0.0, "passed": 0, "loss": 0.0, "loss_tokens": 0}
        self.samples: list[dict] = []
        self.metrics: dict = {"stage": "eval"}

    def setup(self, resume_dir: Path | None = None, on_phase: Callable[[str], None] = lambda p: None) -> None:
        spec = self.spec
        torch.manual_seed(spec.seed)
        self.where = placement(spec)
        on_phase("data")
        self.tokenizer = load_tokenizer(spec)
        self.tasks = heldout_tasks(spec, self.cache_dir)
        self.reward = check_reward_spec(spec.reward, self.tasks[0])
        self.total_steps = max(1, math.ceil(len(self.tasks) / spec.batch_size))
        on_phase("setup")
        self.model = load_policy(spec, self.tokenizer, self.where, fetch_init(spec.init_from, self.workdir))
        self.model.eval()
        if resume_dir is not None:
            saved = json.loads((Path(resume_dir) / "eval_state.json").read_text())
            self.step, self.sums, self.samples = saved["step"], saved["sums"], saved["samples"]
            self.tokens_seen = saved.get("tokens_seen", 0)
            log.info("eval resumes from checkpoint step-%d", self.step)
        log.info("eval of %s on %d held-out rows with reward %s", spec.init_from or spec.model,
                 len(self.tasks), spec.reward)

    def train(self, on_step: OnStep) -> str:
        while self.step < self.total_steps:
            batch = self.tasks[self.step * self.spec.batch_size:(self.step + 1) * self.spec.batch_size]
            loss, tokens = self._score(batch)
            self.step += 1
            self.loss, self.tokens_seen = loss, self.tokens_seen + tokens
            self.metrics = {"stage": "eval", **self.figures()}
            if reason := on_step(self.step, loss, tokens):
                return reason
        return "done"

    @torch.no_grad()
    def _score(self, batch: list[dict]) -> tuple[float, int]:
        spec = self.spec
        prompts = [prompt_text(self.tokenizer, t["prompt"]) for t in batch]
        groups = sample(self.model, self.tokenizer, prompts, 1, spec.max_new_tokens, 1.0, self.where.device,
                        greedy=True)
        tokens = 0
        for task, [(text, n)] in zip(batch, groups, strict=True):
            score = self.reward(task["prompt"], text, task)
            self.sums["n"] += 1
            self.sums["reward"] += score
            self.sums["passed"] += int(self.reward.passes(score))
            tokens += n
            if len(self.samples) < KEEP_SAMPLES:
                self.samples.append({"prompt": task["prompt"], "completion": text,
                                     "reference": task.get("reference"), "reward": score})
        loss_sum, loss_tokens = self._reference_loss(batch)
        self.sums["loss"] += loss_sum
        self.sums["loss_tokens"] += loss_tokens
        return (loss_sum / loss_tokens if loss_tokens else float("nan")), tokens + loss_tokens

    def _reference_loss(self, batch: list[dict]) -> tuple[float, int]:
        """Summed cross-entropy of the reference answers and their token count."""
        total, count = 0.0, 0
        for number, task in enumerate(batch, start=1):
            if task.get("reference") is None:
                continue
            ids, labels = encode({"prompt": task["prompt"], "completion": task["reference"]}, self.tokenizer, number)
            ids_t = torch.tensor([ids[: self.spec.seq_len]], device=self.where.device)
            labels_t = torch.tensor([labels[: self.spec.seq_len]], device=self.where.device)
            items = int((labels_t[:, 1:] != IGNORE).sum())
            if not items:
                continue
            out = self.model(input_ids=ids_t, labels=labels_t)
            total += float(out.loss) * items
            count += items
        return total, count

    def figures(self) -> dict:
        s = self.sums
        return {"mean_reward": s["reward"] / max(s["n"], 1), "pass_rate": s["passed"] / max(s["n"], 1),
                "eval_loss": s["loss"] / s["loss_tokens"] if s["loss_tokens"] else None, "scored": s["n"]}

    def save_checkpoint(self) -> Path:
        local = self.workdir / "checkpoints" / f"step-{self.step}"
        local.mkdir(parents=True, exist_ok=True)
        (local / "eval_state.json").write_text(json.dumps(
            {"step": self.step, "sums": self.sums, "samples": self.samples, "tokens_seen": self.tokens_seen}))
        (local / "state.json").write_text(state_json(self.spec, self.step, self.loss, stage="eval"))
        return local

    def save_final(self) -> Path:
        out = self.workdir / "final"
        out.mkdir(parents=True, exist_ok=True)
        report = {"stage": "eval", "model": self.spec.model, "init_from": self.spec.init_from,
                  "reward": self.spec.reward, "heldout": len(self.tasks), **self.figures(),
                  "samples": self.samples}
        (out / "eval.json").write_text(json.dumps(report, indent=2))
        return out

    def cleanup(self) -> None:
        self.__dict__.pop("model", None)


if __name__ == "__main__":
    import sys

    from training.recipes import runner

    sys.exit(runner.main(EvalRecipe))
