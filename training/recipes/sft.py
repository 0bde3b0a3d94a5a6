"""The sft recipe: supervised fine-tuning with LoRA, QLoRA or full weights.

One class in torchtune's shape — setup / train / save_checkpoint / cleanup — so the agent drives
it the same way whatever happens around it (checkpoint timers, spot notices, stop, deadline).
The loop: for each optimizer step, the batch is split into micro batches (gradient
accumulation); the loss is summed over completion tokens and divided by the step's total
completion tokens, so accumulation gives the same gradient as one big batch. AdamW, linear
warmup then linear decay, gradient clipping at 1.0.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from training import checkpoint
from training.data import IGNORE, prepare
from training.recipes.model import load_model, load_tokenizer, micro_batch, placement

log = logging.getLogger("trainops.recipe")

# on_step(step, loss, tokens) -> None to go on, or a reason to stop now ("interrupted", ...).
OnStep = Callable[[int, float, int], str | None]


class SFTRecipe:
    def __init__(self, spec, workdir: Path, cache_dir: Path | None = None):
        self.spec = spec
        self.workdir = Path(workdir)
        self.cache_dir = Path(cache_dir or self.workdir / "cache")
        self.step = 0
        self.loss: float | None = None
        self.tokens_seen = 0

    # -- setup ---------------------------------------------------------------------------------
    def setup(self, resume_dir: Path | None = None, on_phase: Callable[[str], None] = lambda p: None) -> None:
        spec = self.spec
        torch.manual_seed(spec.seed)
        self.where = placement(spec)
        on_phase("data")
        self.tokenizer = load_tokenizer(spec)
        self.data = prepare(spec, self.tokenizer, self.cache_dir)
        self.total_steps = self.data.total_steps
        on_phase("setup")
        self.model = load_model(spec, self.tokenizer, self.where)
        self.forward = torch.compile(self.model) if spec.compile else self.model
        self.micro = micro_batch(spec, self.where)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable_params = sum(p.numel() for p in params)
        self.optimizer = torch.optim.AdamW(
            params, lr=spec.learning_rate, weight_decay=0.0, fused=self.where.device.type == "cuda")
        from transformers import get_linear_schedule_with_warmup

        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, spec.warmup_steps, self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.where.scaled)
        if resume_dir is not None:
            self.step = checkpoint.load(resume_dir, model=self.model, optimizer=self.optimizer,
                                        scheduler=self.scheduler)
            self.tokens_seen = sum(int(self.data.attention_mask[self.data.batch(s)].sum()) for s in range(self.step))
            log.info("resumed from checkpoint step-%d", self.step)
        log.info("sft %s %s on %s: %d trainable params, %d steps of %d x %d tokens (micro batch %d)",
                 spec.model, spec.method, self.where.device, self.trainable_params, self.total_steps,
                 spec.batch_size, spec.seq_len, self.micro)

    # -- train ---------------------------------------------------------------------------------
    def train(self, on_step: OnStep) -> str:
        """Runs until the last step ("done") or until on_step names a reason to stop."""
        self.model.train()
        while self.step < self.total_steps:
            loss, tokens = self._one_step(self.step)
            self.step += 1
            self.loss = loss
            self.tokens_seen += tokens
            reason = on_step(self.step, loss, tokens)
            if reason:
                return reason
        return "done"

    def _one_step(self, step: int) -> tuple[float, int]:
        device = self.where.device
        index = self.data.batch(step)
        ids = torch.from_numpy(self.data.input_ids[index]).to(device)
        labels = torch.from_numpy(self.data.labels[index]).to(device)
        mask = torch.from_numpy(self.data.attention_mask[index]).to(device)
        # Tokens that carry loss after the model's internal one-token shift.
        items = max(int((labels[:, 1:] != IGNORE).sum()), 1)
        total = 0.0
        for start in range(0, len(index), self.micro):
            part = slice(start, start + self.micro)
            with self._autocast():
                out = self.forward(input_ids=ids[part], attention_mask=mask[part], labels=labels[part],
                                   num_items_in_batch=items)
            self.scaler.scale(out.loss).backward()
            total += out.loss.item()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total, int(mask.sum())

    def _autocast(self):
        if self.where.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.where.device.type, dtype=self.where.autocast)

    # -- save ----------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        started = time.monotonic()
        local = checkpoint.save(self.workdir / "checkpoints" / f"step-{self.step}", model=self.model,
                                optimizer=self.optimizer, scheduler=self.scheduler, step=self.step,
                                spec=self.spec, loss=self.loss)
        log.info("checkpoint step-%d written locally in %.2f s", self.step, time.monotonic() - started)
        return local

    def save_final(self) -> Path:
        """The trained adapter (LoRA) or model (full), with the tokenizer, ready to load."""
        out = self.workdir / "final"
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        return out

    def cleanup(self) -> None:
        for name in ("forward", "model", "optimizer"):
            self.__dict__.pop(name, None)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
