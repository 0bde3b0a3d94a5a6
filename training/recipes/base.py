"""What every recipe holds, whatever its stage: the spec, its folders, and the figures the agent
reports each step (step, loss, tokens seen, the learning rate through `scheduler`)."""

from __future__ import annotations

from pathlib import Path


class ConstantLR:
    """The learning-rate column for stages that train nothing yet (or not at all)."""

    def __init__(self, lr: float):
        self.lr = lr

    def get_last_lr(self) -> list[float]:
        return [self.lr]


class Recipe:
    stage = ""

    def __init__(self, spec, workdir: Path, cache_dir: Path | None = None):
        self.spec = spec
        self.workdir = Path(workdir)
        self.cache_dir = Path(cache_dir or self.workdir / "cache")
        self.step = 0
        self.loss: float | None = None
        self.tokens_seen = 0

    def run_steps(self, one_step, on_step) -> str:
        """Steps from `self.step` to `total_steps`: `one_step(step)` trains one and returns its
        (loss, tokens); `on_step` (the runner's) returns a reason to stop, which ends the loop
        right after the step it was said on."""
        while self.step < self.total_steps:
            loss, tokens = one_step(self.step)
            self.step += 1
            self.loss = loss
            self.tokens_seen += tokens
            if reason := on_step(self.step, loss, tokens):
                return reason
        return "done"
