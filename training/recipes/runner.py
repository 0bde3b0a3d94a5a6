"""One recipe process: `python -m training.recipes.sft --spec spec.json --workdir DIR`, alone or
as one of torchrun's ranks. Any recipe with SFTRecipe's interface runs through `main(Recipe)`.

Files under --workdir (the agent on a GPU machine watches them; standalone they are the result):
    checkpoints/step-N/   written to step-N.tmp and renamed when whole (rank 0)
    final/                the trained adapter or model (rank 0)
    progress.jsonl        rank 0's lines: {"phase"}, {"step","loss","tokens","total_steps","lr",
                          "metrics": the recipe's own figures, e.g. rl's reward},
                          {"checkpoint": N, "save_s"}
    outcome.json          how it ended: {"result": "done"|"stopped"|"interrupted"|"deadline"|
                          "bad_input", "step", "loss", "error"}
--control FILE: the agent's relay, JSON {"reason": null|"stopped"|"interrupted"|"deadline",
"checkpoint": n}; every rank polls it between steps. A reason, a bumped checkpoint counter, the
step/time schedule, SIGTERM and the agent's death (TRAINOPS_AGENT_PID gone) are all local
observations; one all_reduce(MAX) per step turns them into one decision every rank takes at the
same step: so a stop is ONE coordinated checkpoint, then every rank exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from schemas.errors import UserError
from schemas.job import JobSpec

log = logging.getLogger("trainops.recipe")
REASONS = ["stopped", "deadline", "interrupted", "orphaned"]  # later wins when ranks disagree
CODE = {reason: n for n, reason in enumerate(REASONS, start=1)}


def load_spec(path: Path, workdir: Path) -> JobSpec:
    """A full spec.json, or a short one for a laptop (`{"model": "tiny", "max_steps": 20}`)."""
    raw = json.loads(Path(path).read_text())
    raw.setdefault("job_id", "local")
    raw.setdefault("store_uri", f"file://{workdir.resolve()}")
    raw.setdefault("model", "tiny")
    return JobSpec.model_validate(raw)


class Loop:
    """Between steps: report, poll, agree, checkpoint."""

    def __init__(self, recipe, ctx, args):
        self.recipe, self.ctx, self.args = recipe, ctx, args
        self.progress = Path(args.progress or Path(args.workdir) / "progress.jsonl")
        self.control = Path(args.control) if args.control else None
        self.control_seen: tuple[int, dict] = (0, {})
        self.checkpoints_asked = 0
        self.sigterm = False
        self.agent_pid = int(os.environ.get("TRAINOPS_AGENT_PID", "0"))
        self.last_save = (time.monotonic(), recipe.step)

    def write(self, **row) -> None:
        if self.ctx.main:
            with open(self.progress, "a") as handle:
                handle.write(json.dumps(row) + "\n")

    def _read_control(self) -> dict:
        if self.control is None:
            return {}
        try:
            mtime = self.control.stat().st_mtime_ns
            if mtime != self.control_seen[0]:
                self.control_seen = (mtime, json.loads(self.control.read_text()))
        except (OSError, ValueError):
            pass  # not there yet, or mid-replace: the last content stands
        return self.control_seen[1]

    def local_view(self) -> tuple[int, int]:
        """(reason code, 1 if a checkpoint is wanted) as this rank sees it now."""
        control = self._read_control()
        reason = control.get("reason")
        if self.sigterm:
            reason = "interrupted"
        if self.agent_pid and not _alive(self.agent_pid):
            reason = "orphaned"  # nobody left to upload: stop without saving
        asked = int(control.get("checkpoint") or 0)
        spec, step = self.recipe.spec, self.recipe.step
        due = (asked > self.checkpoints_asked or step % spec.checkpoint_every_steps == 0
               or (self.ctx.main and time.monotonic() - self.last_save[0] >= spec.checkpoint_every_s))
        self.checkpoints_asked = max(self.checkpoints_asked, asked)
        return CODE.get(reason, 0), int(due)

    def agree(self) -> tuple[str | None, bool]:
        code, due = (int(v) for v in self.ctx.all_max(list(self.local_view())))
        return (REASONS[code - 1] if code else None), bool(due)

    def checkpoint(self) -> None:
        started = time.monotonic()
        path = self.recipe.save_checkpoint()
        self.last_save = (time.monotonic(), self.recipe.step)
        self.write(checkpoint=self.recipe.step, save_s=round(time.monotonic() - started, 3), path=str(path))
        if self.control is None and self.ctx.main:  # standalone: keep the newest few locally
            _prune(path.parent, self.recipe.spec.keep_checkpoints)

    def on_step(self, step: int, loss: float, tokens: int) -> str | None:
        recipe = self.recipe
        lr = recipe.scheduler.get_last_lr()[0] if hasattr(recipe, "scheduler") else None
        # The recipe's own figures (rl's reward, eval's scores, prep's counts) ride on the line.
        figures = {"metrics": dict(recipe.metrics)} if getattr(recipe, "metrics", None) else {}
        self.write(step=step, loss=loss, tokens=tokens, total_steps=recipe.total_steps, lr=lr, **figures)
        reason, due = self.agree()
        if reason:
            return reason
        if due and step < recipe.total_steps:
            self.checkpoint()
        return None

    def run(self) -> dict:
        recipe = self.recipe
        recipe.setup(Path(self.args.resume) if self.args.resume else None,
                     on_phase=lambda phase: self.write(phase=phase))
        self.last_save = (time.monotonic(), recipe.step)
        self.write(phase="train", step=recipe.step, total_steps=recipe.total_steps,
                   tokens_seen=recipe.tokens_seen)
        reason = self.agree()[0] or recipe.train(self.on_step)
        if reason == "done":
            self.write(phase="save")
            recipe.save_final()
        elif reason != "orphaned" and recipe.step != self.last_save[1]:
            self.write(phase="checkpoint")
            self.checkpoint()  # the one checkpoint a stop takes, on every rank together
        return {"result": reason, "step": recipe.step, "loss": recipe.loss,
                "tokens_seen": recipe.tokens_seen, "total_steps": recipe.total_steps,
                "world_size": self.ctx.world}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _prune(folder: Path, keep: int) -> None:
    steps = sorted((int(p.name[5:]) for p in folder.glob("step-*") if p.name[5:].isdigit()), reverse=True)
    for step in steps[keep:]:
        shutil.rmtree(folder / f"step-{step}", ignore_errors=True)


def _outcome(workdir: Path, rank: int, **fields) -> None:
    if rank == 0:
        tmp = workdir / "outcome.json.tmp"
        tmp.write_text(json.dumps(fields, default=str))
        os.replace(tmp, workdir / "outcome.json")


def main(recipe_class, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train one recipe stage (standalone or under torchrun).")
    parser.add_argument("--spec", required=True, help="a local spec.json (JobSpec fields; job_id, store_uri optional)")
    parser.add_argument("--workdir", default="trainops-run", help="where checkpoints/ and final/ go")
    parser.add_argument("--resume", help="a checkpoint folder to continue from")
    parser.add_argument("--control", help="the agent's relay file (omit when standalone)")
    parser.add_argument("--progress", help="progress lines (default WORKDIR/progress.jsonl)")
    parser.add_argument("--cache-dir", help="tokenised data cache (default $TRAINOPS_CACHE_DIR or WORKDIR/cache)")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s %(name)s[rank {rank}]: %(message)s")
    try:
        spec = load_spec(Path(args.spec), workdir)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = f"bad spec {args.spec}: {'.'.join(str(p) for p in first['loc']) or 'spec'}: {first['msg']}"
        print(message, file=sys.stderr)
        _outcome(workdir, rank, result="bad_input", error=message)
        return 2
    if spec.model == "tiny" or spec.data == "demo":
        os.environ["HF_HUB_OFFLINE"] = "1"  # built-ins never reach for a hub
    from training.recipes import dist

    try:
        ctx = dist.context()
        cache = Path(args.cache_dir or os.environ.get("TRAINOPS_CACHE_DIR") or workdir / "cache")
        loop = Loop(recipe_class(spec, workdir, cache_dir=cache), ctx, args)
        signal.signal(signal.SIGTERM, lambda *_: setattr(loop, "sigterm", True))
        outcome = loop.run()
        _outcome(workdir, rank, **outcome)
        return 0
    except UserError as exc:
        if rank == 0:  # one line, named by the stage: what is wrong and what is valid
            print(f"{getattr(recipe_class, 'stage', 'recipe')}: {exc}", file=sys.stderr, flush=True)
        _outcome(workdir, rank, result="bad_input", error=str(exc))
        return 2
    finally:
        dist.close()
