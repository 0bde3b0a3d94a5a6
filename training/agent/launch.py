"""Starting one recipe stage as a child and watching it: `torchrun` with one process per GPU of
its slot, or plain `python -m` for one process (no rendezvous to pay for).

The agent stays the supervisor. The child (training/recipes/runner.py) writes progress lines
and whole `checkpoints/step-N/` folders under its workdir; this follows the lines into the
tracker and hands each new folder to the Uploader. Every reason to stop the agent learns of
(control.json, a spot notice, SIGTERM, the deadline) is relayed through the child's local
control file, which every rank polls between steps; the ranks agree on the step, save once and
exit. A child that does not exit within the grace after a relay gets SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from training.agent.command import NOTICE_GRACE_S, _sync, _terminate
from training.agent.follow import Lines

log = logging.getLogger("trainops.agent")
ROOT = Path(__file__).resolve().parents[2]  # holds training/ and schemas/: the child's import root
POLL_S = 0.1


def gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()


def command(module: str, nproc: int, args: list[str]) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", module, *args]
    # --standalone: a rendezvous on a free local port, so several runs of a sweep can share a machine.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", module, *args]


class Relay:
    """The agent's side of every child's control file: the reason to stop and a counter of
    checkpoint requests (a rebalance recommendation), written to each running child's file."""

    def __init__(self, signals):
        self.signals = signals
        self.paths: set[Path] = set()
        self.reason: str | None = None
        self.asked = 0
        self._lock = threading.Lock()

    def add(self, path: Path) -> None:
        with self._lock:
            self.paths.add(path)
            self._write(path)

    def remove(self, path: Path) -> None:
        with self._lock:
            self.paths.discard(path)

    def sync(self) -> str | None:
        with self._lock:
            reason = self.signals.check()
            asked = self.signals.take_checkpoint_request()
            self.asked += int(asked)
            if reason != self.reason or asked:
                self.reason = reason
                for path in self.paths:
                    self._write(path)
            return reason

    def _write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"reason": self.reason, "checkpoint": self.asked}))
        os.replace(tmp, path)


@dataclass
class StageRun:
    """What a child left behind: outcome.json's fields, or a failure."""

    result: str  # done | stopped | interrupted | deadline | orphaned | bad_input | failed
    step: int = 0
    loss: float | None = None
    error: str | None = None


def run_stage(*, module: str, spec_path: Path, workdir: Path, nproc: int, devices: list[int] | None,
              resume_dir: Path | None, relay: Relay, on_row, uploader, log_path: Path, grace_s: float,
              cache_dir: Path, env: dict[str, str] | None = None) -> StageRun:
    """Start the stage, follow it to its end; every checkpoint it wrote is submitted for upload."""
    checkpoints, control = workdir / "checkpoints", workdir / "control.json"
    progress, outcome = workdir / "progress.jsonl", workdir / "outcome.json"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for stale in (progress, outcome):
        stale.unlink(missing_ok=True)
    relay.add(control)
    args = ["--spec", str(spec_path), "--workdir", str(workdir), "--control", str(control),
            "--progress", str(progress), "--cache-dir", str(cache_dir)]
    if resume_dir is not None:
        args += ["--resume", str(resume_dir)]
    child_env = dict(os.environ, **(env or {}), TRAINOPS_AGENT_PID=str(os.getpid()),
                     PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    if devices is not None:
        child_env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
    cmd = command(module, nproc, args)
    log.info("starting %s", " ".join(cmd[1:]))
    with open(log_path, "ab") as out:
        # Its own session: a Ctrl-C or a group signal to the agent reaches the ranks only
        # through the relay, so they stop together after one checkpoint.
        proc = subprocess.Popen(cmd, env=child_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    lines = Lines(progress, on_row)
    submitted, relayed_at = -1, None
    try:
        while proc.poll() is None:
            lines.read()
            submitted = _sync(checkpoints, submitted, 0.0, uploader)
            reason = relay.sync()
            if reason and relayed_at is None:
                relayed_at = time.monotonic()
            grace = min(grace_s, NOTICE_GRACE_S) if reason == "interrupted" else grace_s
            if relayed_at is not None and time.monotonic() - relayed_at > grace:
                log.warning("the recipe did not stop within %.0f s of %s", grace, reason)
                _terminate(proc, 10.0)
                break
            time.sleep(POLL_S)
    finally:
        if proc.poll() is None:  # the agent itself is failing: leave no ranks behind
            _terminate(proc, 10.0)
        relay.remove(control)
    lines.read()
    _sync(checkpoints, submitted, 0.0, uploader)
    try:
        ended = json.loads(outcome.read_text())
    except (OSError, ValueError):
        return StageRun("failed", error=f"the recipe exited with {proc.returncode} and no outcome")
    return StageRun(ended["result"], int(ended.get("step") or 0), ended.get("loss"), ended.get("error"))
