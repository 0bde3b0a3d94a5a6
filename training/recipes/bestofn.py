"""`rl_method=best_of_n`: rejection sampling, fine-tuned with the sft machinery.

Each round: sample `n_samples` completions for every task, score them with the reward, keep the
`top_k` best of each task (ties: the earlier sample), then fine-tune on the kept (prompt,
completion) pairs as sft does — completion-only loss, AdamW, the same step function — for
`epochs` passes. `rounds` rounds; the scheduler spans them all. Each kept pair is one padded
sequence (no packing), so a round's step count is known before anything is generated:
ceil(tasks x top_k x epochs / batch_size).

Every candidate, its reward and whether it was kept go to rounds/round-R.jsonl; a checkpoint
carries the current round's file, so a resumed run fine-tunes on the very samples it chose
instead of drawing new ones.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from schemas.errors import UserError
from training.recipes import checkpoint, dist
from training.recipes.data import IGNORE, Packed, encode
from training.recipes.model import load_tokenizer, micro_batch, placement
from training.recipes.policy import fetch_init, load_policy, sample
from training.recipes.rewards import check_reward_spec
from training.recipes.sft import OnStep, SFTRecipe
from training.recipes.tasks import prompt_text, training_tasks

log = logging.getLogger("trainops.recipe")
GENERATE_BATCH = 16  # prompts per generate() call


def select(rewards: list[float], top_k: int) -> list[int]:
    """Indices of the top_k highest rewards; ties go to the earlier sample."""
    return sorted(sorted(range(len(rewards)), key=lambda i: (-rewards[i], i))[:top_k])


class BestOfNRecipe(SFTRecipe):
    stage = "rl"

    def __init__(self, spec, workdir: Path, cache_dir: Path | None = None):
        super().__init__(spec, workdir, cache_dir)
        self.metrics: dict = {"stage": "rl"}
        self.round = -1

    def setup(self, resume_dir: Path | None = None, on_phase: Callable[[str], None] = lambda p: None) -> None:
        spec = self.spec
        if spec.top_k > spec.n_samples:
            raise UserError(f"top_k={spec.top_k} keeps more than the n_samples={spec.n_samples} drawn per task; "
                            "give top_k <= n_samples")
        torch.manual_seed(spec.seed)
        self.ctx = dist.context()
        if self.ctx.world > 1:  # generation and the kept-sample steps are one process's loop
            raise UserError(f"rl_method=best_of_n runs on one process, not {self.ctx.world}: give "
                            "nproc_per_node=1, or use rl_method=grpo on several GPUs")
        self.strategy = "single"
        self.where = placement(spec, self.ctx.device())
        on_phase("data")
        self.tokenizer = load_tokenizer(spec)
        self.tasks = training_tasks(spec, self.cache_dir)
        self.reward = check_reward_spec(spec.reward, self.tasks[0])
        kept = len(self.tasks) * spec.top_k
        self.steps_per_round = max(1, math.ceil(kept * spec.epochs / spec.batch_size))
        self.total_steps = spec.rounds * self.steps_per_round
        if spec.max_steps:
            self.total_steps = min(self.total_steps, spec.max_steps)
        on_phase("setup")
        self.model = load_policy(spec, self.tokenizer, self.where, fetch_init(spec.init_from, self.workdir))
        self.forward = self.model
        self.share = spec.batch_size  # sft's step function: sequences per rank per step
        self.micro = min(micro_batch(spec, self.where), self.share)
        self.trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable_params = sum(p.numel() for p in params)
        self.optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=0.0,
                                           fused=self.where.device.type == "cuda")
        from transformers import get_linear_schedule_with_warmup

        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, spec.warmup_steps, self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.where.scaled)
        if resume_dir is not None:
            self.step = checkpoint.load(resume_dir, model=self.model, optimizer=self.optimizer,
                                        scheduler=self.scheduler, ctx=self.ctx, trainable=self.trainable)
            saved = Path(resume_dir) / "rounds"
            if saved.is_dir():
                shutil.copytree(saved, self.workdir / "rounds", dirs_exist_ok=True)
            log.info("best_of_n resumed from checkpoint step-%d", self.step)
        log.info("rl best_of_n %s on %s: %d tasks, %d rounds of %d samples -> top %d, %d steps",
                 spec.model, self.where.device, len(self.tasks), spec.rounds, spec.n_samples, spec.top_k,
                 self.total_steps)

    # -- rounds --------------------------------------------------------------------------------
    def round_path(self, number: int) -> Path:
        return self.workdir / "rounds" / f"round-{number}.jsonl"

    def _generate_round(self, number: int) -> list[dict]:
        """Every candidate of every task, scored, with `kept` marking the top_k of each task."""
        spec, rows = self.spec, []
        for start in range(0, len(self.tasks), GENERATE_BATCH):
            chunk = self.tasks[start:start + GENERATE_BATCH]
            prompts = [prompt_text(self.tokenizer, t["prompt"]) for t in chunk]
            groups = sample(self.model, self.tokenizer, prompts, spec.n_samples, spec.max_new_tokens,
                            spec.temperature, self.where.device)
            for offset, (task, group) in enumerate(zip(chunk, groups, strict=True)):
                rewards = [self.reward(task["prompt"], text, task) for text, _ in group]
                keep = set(select(rewards, spec.top_k))
                rows += [{"task": start + offset, "prompt": task["prompt"], "completion": text, "tokens": n,
                          "reward": r, "kept": i in keep}
                         for i, ((text, n), r) in enumerate(zip(group, rewards, strict=True))]
        path = self.round_path(number)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return rows

    def _start_round(self, number: int) -> None:
        path = self.round_path(number)
        if path.exists():  # resumed mid-round: the samples it already chose
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        else:
            rows = self._generate_round(number)
        kept = [r for r in rows if r["kept"]]
        rewards = [r["reward"] for r in rows]
        self.metrics = {"stage": "rl", "round": number, "reward": float(np.mean(rewards)),
                        "kept_reward": float(np.mean([r["reward"] for r in kept])),
                        "pass_rate": float(np.mean([self.reward.passes(x) for x in rewards])),
                        "generated_tokens": int(sum(r["tokens"] for r in rows))}
        log.info("round %d: mean reward %.3f over %d samples, %.3f over the %d kept", number,
                 self.metrics["reward"], len(rows), self.metrics["kept_reward"], len(kept))
        self.data = self._pad(kept, seed=self.spec.seed + number)
        self.round = number

    def _pad(self, kept: list[dict], seed: int) -> Packed:
        """One kept pair per sequence, cut or padded to seq_len."""
        n, length = len(kept), self.spec.seq_len
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        ids = np.full((n, length), pad, dtype=np.int64)
        labels = np.full((n, length), IGNORE, dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.int64)
        for i, row in enumerate(kept):
            a, b = encode({"prompt": row["prompt"], "completion": row["completion"]}, self.tokenizer, i + 1)
            a, b = a[:length], b[:length]
            ids[i, :len(a)], labels[i, :len(b)], mask[i, :len(a)] = a, b, 1
        return Packed(ids, labels, mask, self.spec.batch_size, self.steps_per_round, seed)

    # -- train ---------------------------------------------------------------------------------
    def train(self, on_step: OnStep) -> str:
        self.model.train()
        return self.run_steps(self._round_step, on_step)

    def _round_step(self, step: int) -> tuple[float, int]:
        """A step of the round it falls in; the round's samples are drawn at its first step."""
        number = step // self.steps_per_round
        if number != self.round:
            self._start_round(number)
        return self._one_step(step - number * self.steps_per_round)

    def save_checkpoint(self) -> Path:
        local = super().save_checkpoint()
        current = self.round_path(self.step // self.steps_per_round)
        if current.exists():
            (local / "rounds").mkdir(exist_ok=True)
            shutil.copy2(current, local / "rounds" / current.name)
        return local

    def save_final(self) -> Path:
        out = super().save_final()
        summary = {"stage": "rl", "method": "best_of_n", "reward": self.spec.reward, "steps": self.step,
                   "rounds": self.spec.rounds, "n_samples": self.spec.n_samples, "top_k": self.spec.top_k,
                   "init_from": self.spec.init_from, "last_round": self.metrics}
        (out / "rl.json").write_text(json.dumps(summary, indent=2))
        return out
