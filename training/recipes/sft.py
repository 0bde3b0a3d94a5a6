"""The sft recipe: supervised fine-tuning with LoRA, QLoRA or full weights.

One class in torchtune's shape — setup / train / save_checkpoint / cleanup — so the agent drives
it the same way whatever happens around it (checkpoint timers, spot notices, stop, deadline).
The loop: for each optimizer step, the batch is split into micro batches (gradient
accumulation); the loss is summed over completion tokens and divided by the step's total
completion tokens, so accumulation gives the same gradient as one big batch. AdamW, linear
warmup then linear decay, gradient clipping at 1.0.

Data parallel (training/recipes/dist.py): the step's global batch (spec.batch_size sequences,
whatever the world size) is dealt out rank by rank (sequence i to rank i % world); every rank
runs the same number of micro batches (a rank short of sequences runs one whose labels are all
ignored), so FSDP's collectives line up and the step's gradient is the one a single process
would compute. The data order is a function of the step alone, so a checkpoint resumes at any
world size from the same step with the same batches.

`python -m training.recipes.sft --spec spec.json --workdir DIR` trains standalone (a CPU laptop:
the tiny model on the demo data); under torchrun on every GPU. See training/recipes/runner.py.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from training.recipes import checkpoint, dist
from training.recipes.base import Recipe
from training.recipes.data import IGNORE, prepare
from training.recipes.model import load_model, load_tokenizer, micro_batch, placement

log = logging.getLogger("trainops.recipe")

# on_step(step, loss, tokens) -> None to go on, or a reason to stop now ("interrupted", ...).
OnStep = Callable[[int, float, int], str | None]


class SFTRecipe(Recipe):
    stage = "sft"

    def __init__(self, spec, workdir: Path, cache_dir: Path | None = None):
        super().__init__(spec, workdir, cache_dir)

    # -- setup ---------------------------------------------------------------------------------
    def setup(self, resume_dir: Path | None = None, on_phase: Callable[[str], None] = lambda p: None) -> None:
        spec = self.spec
        torch.manual_seed(spec.seed)
        self.ctx = dist.context()
        self.strategy = dist.strategy(spec, self.ctx.world)
        self.where = placement(spec, self.ctx.device())
        on_phase("data")
        self.tokenizer = load_tokenizer(spec)
        self.data = prepare(spec, self.tokenizer, self.cache_dir)
        self.total_steps = self.data.total_steps
        on_phase("setup")
        if self.strategy == "fsdp":  # read once on rank 0, sent as shards (sharded.py)
            from training.recipes.sharded import load_sharded

            self.model, self.trainable, self.trainable_params = load_sharded(
                spec, self.tokenizer, self.where, self.ctx,
                lambda m: dist.wrap(m, "fsdp", self.ctx, self.where.autocast))
        else:
            self.model = load_model(spec, self.tokenizer, self.where)
            self.trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
            self.trainable_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
            self.model = dist.wrap(self.model, self.strategy, self.ctx, self.where.autocast)
        self.forward = torch.compile(self.model) if spec.compile else self.model
        self.share = -(-spec.batch_size // self.ctx.world)  # sequences per rank per step, at most
        self.micro = min(micro_batch(spec, self.where), self.share)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=spec.learning_rate, weight_decay=0.0, fused=self.where.device.type == "cuda")
        from transformers import get_linear_schedule_with_warmup

        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, spec.warmup_steps, self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.where.scaled)
        if resume_dir is not None:
            self.step = checkpoint.load(resume_dir, model=self.model, optimizer=self.optimizer,
                                        scheduler=self.scheduler, ctx=self.ctx, trainable=self.trainable)
            self.tokens_seen = sum(int(self.data.attention_mask[self.data.batch(s)].sum()) for s in range(self.step))
            log.info("resumed from checkpoint step-%d", self.step)
        if self.ctx.main:
            log.info("sft %s %s on %s x%d (%s): %d trainable params, %d steps of %d x %d tokens "
                     "(micro batch %d per rank)", spec.model, spec.method, self.where.device.type,
                     self.ctx.world, self.strategy, self.trainable_params, self.total_steps,
                     spec.batch_size, spec.seq_len, self.micro)

    # -- train ---------------------------------------------------------------------------------
    def train(self, on_step: OnStep) -> str:
        """Runs until the last step ("done") or until on_step names a reason to stop."""
        self.model.train()
        return self.run_steps(self._one_step, on_step)

    def _one_step(self, step: int) -> tuple[float, int]:
        device, world = self.where.device, self.ctx.world
        index = self.data.batch(step)
        mine = index[self.ctx.rank::world]
        ids = torch.from_numpy(self.data.input_ids[mine]).to(device)
        labels = torch.from_numpy(self.data.labels[mine]).to(device)
        mask = torch.from_numpy(self.data.attention_mask[mine]).to(device)
        # Tokens that carry loss after the model's internal one-token shift, over the GLOBAL
        # batch: every rank divides by the same count, so the sum over ranks is the step's loss.
        items = max(int((self.data.labels[index][:, 1:] != IGNORE).sum()), 1)
        parts = -(-self.share // self.micro)  # the same on every rank
        total = 0.0
        for n in range(parts):
            part = slice(n * self.micro, (n + 1) * self.micro)
            x, y, m = ids[part], labels[part], mask[part]
            if len(x) == 0:  # this rank is out of sequences: a no-loss pass keeps collectives in step
                x, m = self._filler(device)
                y = torch.full_like(x, IGNORE)
            with dist.sync_gradients(self.model, self.strategy, last=n == parts - 1):
                with self._autocast():
                    out = self.forward(input_ids=x, attention_mask=m, labels=y, num_items_in_batch=items)
                # DDP and FSDP average gradients over ranks; the step wants their sum.
                self.scaler.scale(out.loss * world).backward()
            total += out.loss.item()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.ctx.all_sum([total])[0]
        return loss, int(self.data.attention_mask[index].sum())

    def _filler(self, device):
        shape = (1, self.data.input_ids.shape[1])
        return torch.from_numpy(self.data.input_ids[:1]).to(device), torch.ones(shape, dtype=torch.long, device=device)

    def _autocast(self):
        if self.where.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.where.device.type, dtype=self.where.autocast)

    # -- save ----------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Collective: every rank calls it; rank 0 writes `checkpoints/step-N/`."""
        started = time.monotonic()
        local = checkpoint.save(self.workdir / "checkpoints" / f"step-{self.step}", model=self.model,
                                optimizer=self.optimizer, scheduler=self.scheduler, step=self.step,
                                spec=self.spec, loss=self.loss, ctx=self.ctx, strategy=self.strategy)
        if self.ctx.main:
            log.info("checkpoint step-%d written locally in %.2f s", self.step, time.monotonic() - started)
        return local

    def save_final(self) -> Path:
        """The trained adapter (LoRA) or model (full), with the tokenizer, ready to load.
        Collective: the weights are gathered to rank 0, which writes `final/`."""
        out = self.workdir / "final"
        lora = self.spec.method != "full"
        state = checkpoint.trainable_state(self.model, self.ctx) if lora else checkpoint.full_state(self.model, self.ctx)
        if self.ctx.main:
            unwrapped = getattr(self.model, "module", self.model)  # DDP keeps the model in .module
            unwrapped.save_pretrained(out, state_dict=state)
            self.tokenizer.save_pretrained(out)
        self.ctx.barrier()
        return out

    def cleanup(self) -> None:
        for name in ("forward", "model", "optimizer"):
            self.__dict__.pop(name, None)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    from training.recipes.runner import main as run

    return run(SFTRecipe, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
