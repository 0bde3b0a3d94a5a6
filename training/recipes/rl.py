"""The rl stage: reinforcement learning from the spec's reward, on the base model or `init_from`.

`rl_method=grpo` (default) is TRL's GRPOTrainer: each optimizer step samples `n_samples`
completions for each of `batch_size` tasks, scores them with the reward, and pushes up the
completions that beat their group's mean. `rl_method=best_of_n` (training/recipes/bestofn.py)
is rejection sampling: generate, keep the best, fine-tune on them, for `rounds` rounds.

How the agent drives GRPO step by step: GRPOTrainer runs its own loop, so a TrainerCallback
(`_Bridge`) calls the agent's on_step after every optimizer step, once TRL has logged the step's
loss and rewards; when on_step names a reason (stop, deadline, spot notice), the callback sets
`control.should_training_stop` and the trainer returns after that step. save_checkpoint writes
TRL's own checkpoint (the adapter, optimizer, scheduler, RNG states and trainer_state.json with
the step and the log history) into checkpoints/step-N; setup(resume_dir) reads the step back
and train() hands the folder to `trainer.train(resume_from_checkpoint=...)`, which restores all
of it and skips the batches already trained on. transformers reads those files with
weights_only=True (no pickled code); a planted one is refused with one line (checkpoint.refused),
and save_checkpoint drops TRL's training_args.bin, a full pickle that resuming never reads.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from schemas.errors import UserError
from training.recipes.base import ConstantLR, Recipe
from training.recipes.model import load_tokenizer, placement
from training.recipes.policy import fetch_init, load_policy
from training.recipes.rewards import check_reward_spec
from training.recipes.tasks import prompt_text, training_tasks

log = logging.getLogger("trainops.recipe")
OnStep = Callable[[int, float, int], str | None]


def RLRecipe(spec, workdir: Path, cache_dir: Path | None = None):  # noqa: N802 (a recipe "class")
    """The rl stage's recipe for the spec's rl_method."""
    if spec.rl_method == "best_of_n":
        from training.recipes.bestofn import BestOfNRecipe

        return BestOfNRecipe(spec, workdir, cache_dir)
    return GRPORecipe(spec, workdir, cache_dir)


RLRecipe.stage = "rl"  # the runner names the stage in its one-line errors


def state_json(spec, step: int, loss: float | None, **extra) -> str:
    """state.json beside every rl/eval checkpoint, as the sft checkpoints have."""
    return json.dumps({"step": step, "loss": loss, "spec_hash": spec.spec_hash(),
                       "training_fields": {k: getattr(spec, k) for k in spec.TRAINING_FIELDS}, **extra},
                      indent=2, default=str)



class GRPORecipe(Recipe):
    stage = "rl"

    def __init__(self, spec, workdir: Path, cache_dir: Path | None = None):
        super().__init__(spec, workdir, cache_dir)
        self.metrics: dict = {"stage": "rl"}
        self.resume_dir: Path | None = None
        self.stop_reason: str | None = None

    @property
    def scheduler(self):
        trainer = getattr(self, "trainer", None)
        return getattr(trainer, "lr_scheduler", None) or ConstantLR(self.spec.learning_rate)

    def setup(self, resume_dir: Path | None = None, on_phase: Callable[[str], None] = lambda p: None) -> None:
        from datasets import Dataset
        from transformers import set_seed
        from trl import GRPOConfig, GRPOTrainer

        spec = self.spec
        set_seed(spec.seed)
        self.where = placement(spec)
        on_phase("data")
        self.tokenizer = load_tokenizer(spec)
        tasks = training_tasks(spec, self.cache_dir)
        self.reward = check_reward_spec(spec.reward, tasks[0])
        self.total_steps = max(1, math.ceil(len(tasks) * spec.epochs / spec.batch_size))
        if spec.max_steps:
            self.total_steps = min(self.total_steps, spec.max_steps)
        dataset = Dataset.from_list([{"prompt": prompt_text(self.tokenizer, t["prompt"]),
                                      "task": json.dumps(t, default=str)} for t in tasks])
        on_phase("setup")
        model = load_policy(spec, self.tokenizer, self.where, fetch_init(spec.init_from, self.workdir))
        completions = spec.batch_size * spec.n_samples
        world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's; TRL/accelerate split the batch
        if completions % world:
            raise UserError(f"batch_size x n_samples = {completions} completions per step cannot be split "
                            f"over {world} GPUs; make it a multiple of {world}")
        longest = max(len(self.tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]) for row in dataset)
        micro = self._micro(completions // world, longest + spec.max_new_tokens)
        autocast = self.where.autocast
        config = GRPOConfig(
            output_dir=str(self.workdir / "trl"), max_steps=self.total_steps, seed=spec.seed,
            data_seed=spec.seed, learning_rate=spec.learning_rate, warmup_steps=spec.warmup_steps,
            lr_scheduler_type="linear", weight_decay=0.0, max_grad_norm=1.0,
            per_device_train_batch_size=micro, gradient_accumulation_steps=completions // world // micro,
            num_generations=spec.n_samples, max_completion_length=spec.max_new_tokens,
            temperature=spec.temperature, top_k=0, beta=spec.kl_beta,
            logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True,
            use_cpu=self.where.device.type == "cpu", bf16=autocast is torch.bfloat16,
            fp16=autocast is torch.float16, activation_checkpointing=spec.gradient_checkpointing,
            dataloader_num_workers=0, remove_unused_columns=False,
        )
        self.trainer = GRPOTrainer(model=model, reward_funcs=self._score, args=config, train_dataset=dataset,
                                   processing_class=self.tokenizer)
        from transformers.trainer_callback import PrinterCallback

        self.trainer.remove_callback(PrinterCallback)  # every step reaches on_step; no second print
        if resume_dir is not None:
            state = json.loads((Path(resume_dir) / "trainer_state.json").read_text())
            self.step = state["global_step"]
            self.tokens_seen = int(state.get("num_input_tokens_seen") or 0)
            self.resume_dir = Path(resume_dir)
            log.info("rl resumes from checkpoint step-%d", self.step)
        log.info("rl grpo %s on %s: %d tasks, %d steps of %d tasks x %d samples, reward %s",
                 spec.model, self.where.device, len(tasks), self.total_steps, spec.batch_size,
                 spec.n_samples, spec.reward)

    def _micro(self, per_rank: int, tokens_each: int) -> int:
        """Completions per forward/backward. TRL generates a step's completions at once, then
        trains on them in micro batches (gradient accumulation): one optimizer step per
        generation, so a checkpoint between steps holds no half-used generations. The spec's
        micro_batch_size, or all on the CPU, or the largest divisor keeping <= 16k tokens."""
        if self.spec.micro_batch_size:
            return math.gcd(self.spec.micro_batch_size, per_rank)
        if self.where.device.type == "cpu":
            return per_rank
        return max([d for d in range(1, per_rank + 1) if per_rank % d == 0 and d * tokens_each <= 16384] or [1])

    def _score(self, prompts, completions, task, **_) -> list[float]:
        """TRL's reward function: the spec's reward for each (task, completion)."""
        rows = [json.loads(t) for t in task]
        return [self.reward(row["prompt"], completion, row) for row, completion in zip(rows, completions, strict=True)]

    def train(self, on_step: OnStep) -> str:
        self.stop_reason = None
        self.trainer.add_callback(_Bridge(self, on_step))
        resume, self.resume_dir = self.resume_dir, None
        try:
            self.trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        except pickle.UnpicklingError as exc:  # weights_only=True met a callable: nothing ran
            if resume is None:
                raise
            from training.recipes.checkpoint import refused

            raise refused(f"{resume.name} (TRL's optimizer, scheduler or RNG state)", exc) from None
        return self.stop_reason or "done"

    def save_checkpoint(self) -> Path:
        started = time.monotonic()
        trainer = self.trainer
        stopping = trainer.control.should_training_stop
        trainer.control.should_training_stop = False  # a resumed run must not stop at once
        try:
            trainer._save_checkpoint(trainer.model, trial=None)
        finally:
            trainer.control.should_training_stop = stopping
        written = Path(trainer.args.output_dir) / f"checkpoint-{trainer.state.global_step}"
        local = self.workdir / "checkpoints" / f"step-{self.step}"
        if torch.distributed.is_initialized():
            torch.distributed.barrier()  # every rank's files (RNG states) are written before the move
        if trainer.args.should_save:  # the main process: one folder per machine
            shutil.rmtree(local, ignore_errors=True)
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(written), local)
            (local / "training_args.bin").unlink(missing_ok=True)  # a pickle nobody must load
            (local / "state.json").write_text(state_json(self.spec, self.step, self.loss, method="grpo"))
        log.info("checkpoint step-%d written locally in %.2f s", self.step, time.monotonic() - started)
        return local

    def history(self) -> list[dict]:
        """Every step's loss and rewards so far, across resumes (TRL keeps them in its state)."""
        keep = ("step", "loss", "reward", "reward_std", "frac_reward_zero_std", "kl")
        return [{k: row[k] for k in keep if k in row} for row in self.trainer.state.log_history if "reward" in row]

    def save_final(self) -> Path:
        out = self.workdir / "final"
        self.trainer.save_model(str(out))  # the main process writes; the others wait for it
        if not self.trainer.args.should_save:
            return out
        self.tokenizer.save_pretrained(out)
        (out / "rl.json").write_text(json.dumps(
            {"stage": "rl", "method": "grpo", "reward": self.spec.reward, "steps": self.step,
             "init_from": self.spec.init_from, "history": self.history()}, indent=2))
        return out

    def cleanup(self) -> None:
        self.__dict__.pop("trainer", None)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _bridge_base():
    from transformers import TrainerCallback

    return TrainerCallback


class _Bridge(_bridge_base()):
    """Calls the agent's on_step after each GRPO step; a reason it returns ends training."""

    def __init__(self, recipe: GRPORecipe, on_step: OnStep):
        self.recipe, self.on_step = recipe, on_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or state.global_step <= self.recipe.step:
            return control
        recipe = self.recipe
        seen = int(state.num_input_tokens_seen or 0)
        tokens, recipe.tokens_seen = max(seen - recipe.tokens_seen, 0), seen
        recipe.step, recipe.loss = state.global_step, float(logs["loss"])
        recipe.metrics = {"stage": "rl", "reward": logs.get("reward"), "reward_std": logs.get("reward_std"),
                          "completion_length": logs.get("completions/mean_length")}
        reason = self.on_step(recipe.step, recipe.loss, tokens)
        if reason:
            recipe.stop_reason = reason
            control.should_training_stop = True
        return control


if __name__ == "__main__":
    import sys

    from training.recipes import runner

    sys.exit(runner.main(RLRecipe))
