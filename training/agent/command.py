"""The custom-command path: run the user's own script instead of the recipe, with the same
checkpoint sync, progress, notice, stop and deadline handling.

The script gets TRAINOPS_CHECKPOINT_DIR (write `step-N/` folders there — best by writing to a
temporary name and renaming; the agent uploads a folder once it is complete: renamed into place,
quiet for QUIET_S, or the script has exited), TRAINOPS_PROGRESS_FILE (JSON lines, or
`training.report(...)`), TRAINOPS_OUTPUT_DIR (what ends up in `final/`) and TRAINOPS_RESUME_STEP
when an earlier attempt left a checkpoint (already downloaded into the checkpoint folder).
To end it early the agent sends SIGTERM to its process group, then SIGKILL after spec.grace_s
(at most NOTICE_GRACE_S on a spot notice, so the upload still fits in the two minutes).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from training.agent.env import command_env
from training.agent.follow import Lines

log = logging.getLogger("trainops.command")
QUIET_S = 2.0
NOTICE_GRACE_S = 60.0
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class CommandResult:
    reason: str | None  # the signal reason that ended it, None when it ended by itself
    returncode: int
    step: int
    loss: float | None


def tracker_rows(path: Path, tracker) -> Lines:
    """The command's progress file, each line fed to the tracker (a line must carry `step`)."""

    def on_row(row) -> None:
        try:
            step = int(row["step"])
        except (KeyError, TypeError) as exc:
            raise ValueError("want JSON with step") from exc
        if row.get("total_steps"):
            tracker.total_steps = int(row["total_steps"])
        extra = {k: v for k, v in row.items() if k not in ("step", "loss", "tokens", "time")}
        tracker.record(step, row.get("loss"), int(row.get("tokens") or 0), **extra)

    return Lines(path, on_row)


def complete_steps(checkpoint_dir: Path, quiet_s: float) -> list[int]:
    """step-N folders nothing has written to for quiet_s (0: every folder)."""
    now, steps = time.time(), []
    for child in checkpoint_dir.iterdir() if checkpoint_dir.exists() else []:
        match = _STEP_DIR.match(child.name)
        if not match or not child.is_dir():
            continue
        newest = max((p.stat().st_mtime for p in child.rglob("*")), default=child.stat().st_mtime)
        if now - newest >= quiet_s:
            steps.append(int(match.group(1)))
    return sorted(steps)


def run_command(spec, workdir: Path, signals, tracker, uploader, log_path: Path,
                resume_step: int | None) -> CommandResult:
    checkpoint_dir, output_dir = workdir / "checkpoints", workdir / "output"
    progress_file = workdir / "progress.jsonl"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    # An allow-listed environment: the script never sees the agent's store credentials.
    env = command_env(os.environ, TRAINOPS_CHECKPOINT_DIR=str(checkpoint_dir),
                      TRAINOPS_JOB_ID=spec.job_id, TRAINOPS_PROGRESS_FILE=str(progress_file),
                      TRAINOPS_OUTPUT_DIR=str(output_dir), TRAINOPS_ATTEMPT=str(spec.attempt))
    if resume_step is not None:
        env["TRAINOPS_RESUME_STEP"] = str(resume_step)
    submitted = resume_step if resume_step is not None else -1
    reader = tracker_rows(progress_file, tracker)
    log.info("running command: %s", spec.command)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(spec.command, shell=True, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own group: SIGTERM reaches children too
    tracker.start_training(max(resume_step or 0, 0), 0)
    reason = None
    while proc.poll() is None:
        reader.read()
        submitted = _sync(checkpoint_dir, submitted, QUIET_S, uploader)
        if signals.take_checkpoint_request():
            log.info("rebalance recommendation: the script saves on its own schedule")
        reason = signals.check()
        if reason:
            grace = min(spec.grace_s, NOTICE_GRACE_S) if reason == "interrupted" else spec.grace_s
            _terminate(proc, grace)
            break
        time.sleep(0.25)
    reader.read()
    _sync(checkpoint_dir, submitted, 0.0, uploader)
    return CommandResult(reason, proc.returncode, tracker.step, tracker.loss)


def _sync(checkpoint_dir: Path, submitted: int, quiet_s: float, uploader) -> int:
    steps = [s for s in complete_steps(checkpoint_dir, quiet_s) if s > submitted]
    if steps:
        newest = steps[-1]  # only the newest matters; older ones would be pruned anyway
        uploader.submit(newest, checkpoint_dir / f"step-{newest}")
        return newest
    return submitted


def _terminate(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the whole process group, SIGKILL after grace_s. The shell that runs the
    command may exit at once while the script under it is still saving: wait for the group."""
    log.info("sending SIGTERM to the command (grace %.0f s)", grace_s)
    deadline = time.monotonic() + grace_s
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    while (proc.poll() is None or _group_alive(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None or _group_alive(proc.pid):
        log.warning("command still running after %.0f s: SIGKILL", grace_s)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _group_alive(pgid: int) -> bool:
    """Any live (not zombie) process left in the group? Linux /proc; elsewhere, ask kill(0)."""
    proc_root = Path("/proc")
    if not proc_root.exists():
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for stat in proc_root.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
