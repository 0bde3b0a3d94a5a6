"""The training agent: `python -m training.agent --spec s3://bucket/prefix/jobs/J/spec.json`.

Reads the spec, runs the recipe stages on every GPU (training/agent/plan.py: torchrun children,
each run and stage resuming from its own newest verified checkpoint) or the user's command,
keeps progress.json fresh, obeys control.json and spot notices, and ends with
status.json and its log in the store. It needs only `schemas` plus the `train` extra.

Exit codes (and status.json `state`):
    0 succeeded   1 failed   2 failed on bad input (spec, data, a checkpoint of another spec)
    3 interrupted (spot notice or a rehearsal)   4 stopped (control.json stop)   5 deadline
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from schemas.errors import UserError
from schemas.job import AgentStatus, JobSpec
from schemas.redact import redact
from schemas.store import read_model, split_job_uri, write_agent_doc
from training.agent.guard import preflight, upload_budget_at_deadline
from training.agent.runtime import MIN_DEADLINE_MARGIN_S, Signals, Tracker, Watchers
from training.agent.sync import (
    Uploader,
    check_spec,
    fetch_latest,
    retry,
    seed_from,
    spec_meta,
    upload_dir,
)

log = logging.getLogger("trainops.agent")
EXIT_CODES = {"succeeded": 0, "failed": 1, "interrupted": 3, "stopped": 4, "deadline": 5}
BAD_INPUT = 2
NOTICE_UPLOAD_BUDGET_S = 90.0  # of AWS's two minutes, leaving room to write status and exit
UPLOAD_BUDGET_S = 600.0  # stop, deadline, success: wait this long for the last upload


@dataclass
class Outcome:
    state: str
    step: int = 0
    final_loss: float | None = None
    output_uri: str | None = None
    error: str | None = None
    code: int | None = None  # None: EXIT_CODES[state]
    stage: str | None = None  # the stage `step` and `final_loss` belong to (several stages)


class Attempt:
    """One run of the agent: the store, the spec and the threads beside the training."""

    def __init__(self, spec: JobSpec, store, prefix: str, workdir: Path, log_path: Path):
        self.spec, self.store, self.prefix, self.workdir = spec, store, prefix, workdir
        self.log_path = log_path
        self.signals = Signals()
        self.tracker = Tracker(spec.attempt, workdir / f"metrics-attempt-{spec.attempt}.jsonl")
        self.meta = spec_meta(spec)
        self.uploader = Uploader(store, prefix, spec.keep_checkpoints, meta=self.meta,
                                 delete_local=spec.command is None)
        self.tracker.uploader = self.uploader
        self.watchers = Watchers(spec, store, prefix, self.signals, self.tracker, log_path)

    def resume(self, local_root: Path) -> tuple[int, Path] | None:
        """The custom command's resume (the recipe path resumes per run and stage: plan.py)."""
        if self.spec.resume_from:  # /train resume: the old job's checkpoint becomes ours first
            seed_from(self.store, self.prefix, self.spec.resume_from, local_root / "seed")
        found = fetch_latest(self.store, self.prefix, local_root)
        if found is None:
            log.info("no checkpoint in the store: starting from scratch")
            return None
        manifest, local_dir = found
        check_spec(manifest, self.spec, f"{self.store.uri}/{self.prefix}/checkpoints")
        self.uploader.uploaded_step = manifest["step"]
        log.info("resuming from checkpoint step-%d", manifest["step"])
        return manifest["step"], local_dir

    def upload_final(self, local_dir: Path, step: int) -> str:
        self.tracker.phase = "save"
        retry(lambda: upload_dir(self.store, f"{self.prefix}/final", local_dir, step, self.meta),
              what="final upload")
        return f"{self.store.uri}/{self.prefix}/final/"

    def wait_uploads(self, reason: str, step: int) -> str | None:
        return self._wait(self.uploader, reason, step)

    def run_recipe(self) -> Outcome:
        """Every run and stage of the spec, on every GPU (training/agent/plan.py)."""
        from training.agent.plan import Plan

        self.cache_dir = _cache_dir()
        plan = Plan(self)
        results = plan.run()
        try:
            return self._outcome(plan, results)
        finally:
            for uploader in {u for r in results for u in r.uploaders} - {self.uploader}:
                uploader.close()  # the attempt's own closes in finish()

    def _outcome(self, plan, results) -> Outcome:
        bad = [r for r in results if r.result in ("bad_input", "failed", "orphaned")]
        steps = sum(r.step for r in results)
        loss = results[0].loss if len(results) == 1 else None
        if bad:
            error = "; ".join(f"{r.name}: {r.error}" if r.name else str(r.error) for r in bad)
            if any(r.result == "failed" for r in bad):
                error += f"\n{_tail(self.log_path)}"
            return Outcome("failed", steps, loss, error=error,
                           code=BAD_INPUT if all(r.result == "bad_input" for r in bad) else None)
        if all(r.result == "done" for r in results):
            # A pipeline's result is its last model (rl's, not the eval after it).
            first = results[0]
            output = (first.model_output or first.output) if not plan.sweep else f"{self.store.uri}/{self.prefix}/runs/"
            if len(plan.units) > 1 and not plan.sweep and first.model_stage:
                return Outcome("succeeded", first.model_step, first.model_loss, output,
                               stage=first.model_stage)
            return Outcome("succeeded", steps, loss, output)
        reason = self.signals.check() or next(r.result for r in results if r.result != "done")
        self.tracker.phase = "checkpoint"
        errors = [e for r in results for u in r.uploaders if (e := self._wait(u, reason, steps))]
        return Outcome(reason, steps, loss, error="; ".join(errors) or None)

    def _wait(self, uploader, reason: str, step: int) -> str | None:
        budget = NOTICE_UPLOAD_BUDGET_S if reason == "interrupted" else UPLOAD_BUDGET_S
        if reason == "deadline":  # security #14: never wait past the money
            budget = upload_budget_at_deadline(self.signals, budget)
        if uploader.wait(budget):
            return None
        if reason == "deadline":
            return (f"checkpoint not in the store after {budget:.0f} s (step {step}; the money ran "
                    f"out first, the last uploaded checkpoint stays valid): {uploader.error}")
        return f"checkpoint not in the store after {budget:.0f} s (step {step}): {uploader.error}"

    def run_command(self) -> Outcome:
        from training.agent.command import run_command

        resumed = self.resume(self.workdir / "checkpoints")
        self.signals.margin_s = max(MIN_DEADLINE_MARGIN_S, self.spec.grace_s + 30)
        if reason := self.signals.check():
            return Outcome(reason, resumed[0] if resumed else 0)
        result = run_command(self.spec, self.workdir, self.signals, self.tracker, self.uploader,
                             self.log_path, resumed[0] if resumed else None)
        if result.reason:
            return Outcome(result.reason, result.step, result.loss,
                           error=self.wait_uploads(result.reason, result.step))
        if result.returncode != 0:
            return Outcome("failed", result.step, result.loss,
                           error=f"command exited with {result.returncode}:\n{_tail(self.log_path)}")
        output = self.workdir / "output"
        uri = self.upload_final(output, result.step) if any(output.rglob("*")) else None
        if uri is None:  # no output folder: the script's own checkpoints are its result
            self.wait_uploads("done", result.step)
        return Outcome("succeeded", result.step, result.loss, uri)

    def run(self) -> Outcome:
        try:
            preflight(self.spec, self.watchers)  # security #14: data roots, a deadline first
            return self.run_command() if self.spec.command else self.run_recipe()
        except UserError as exc:
            log.error("%s", exc)
            return Outcome("failed", self.tracker.step, error=str(exc), code=BAD_INPUT)
        except Exception:
            log.exception("the attempt failed")
            return Outcome("failed", self.tracker.step, error=traceback.format_exc()[-3000:])

    def finish(self, outcome: Outcome) -> None:
        """Status, a last progress and the log; each guarded so one failure can't hide the rest."""
        self.watchers.stop()
        self.tracker.phase = "done"
        status = AgentStatus(state=outcome.state, attempt=self.spec.attempt, step=outcome.step,
                             last_checkpoint_step=self.uploader.uploaded_step,
                             final_loss=outcome.final_loss, error=redact(outcome.error) or None,
                             output_uri=outcome.output_uri, stage=outcome.stage)
        log.info("attempt %d ends: %s at step %d", self.spec.attempt, outcome.state, outcome.step)
        for action in (self.watchers.write_progress,
                       lambda: write_agent_doc(self.store, self.prefix, "status.json", status),
                       self.watchers.ship_logs):
            try:
                retry(action, what="final write", tries=3)
            except Exception as exc:
                log.error("could not write to the store: %s", exc)
        self.uploader.close()


def _with_job_credentials(store, spec: JobSpec):
    """The store, writing with this job's own credentials (training/agent/credentials.py)."""
    from schemas.store import S3Store
    from training.agent.credentials import writing_with_job_credentials

    if not isinstance(store, S3Store):
        raise UserError(f"per-job credentials need an s3:// store, not {store.uri}")
    return writing_with_job_credentials(store, spec.job_id)


def run(spec_uri: str, workdir: str | Path | None = None, wrap_store=None) -> int:
    """One attempt; returns the exit code. `wrap_store` lets tests put a faulty store in place."""
    try:
        store, key = split_job_uri(spec_uri)
        spec = read_model(store, key, JobSpec)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        print(f"trainops agent: bad spec at {spec_uri}: {where}: {first['msg']}", file=sys.stderr)
        return BAD_INPUT
    except UserError as exc:
        print(f"trainops agent: cannot read the spec at {spec_uri}: {exc}", file=sys.stderr)
        return BAD_INPUT
    if spec is None:
        print(f"trainops agent: no spec at {spec_uri}", file=sys.stderr)
        return BAD_INPUT
    if spec.model == "tiny" or spec.data == "demo":
        os.environ["HF_HUB_OFFLINE"] = "1"  # built-ins never reach for a hub
    if spec.job_credentials:
        try:
            store = _with_job_credentials(store, spec)
        except Exception as exc:  # noqa: BLE001 - without them nothing can be written
            print(f"trainops agent: cannot write job {spec.job_id}'s files: {redact(str(exc))}",
                  file=sys.stderr)
            return EXIT_CODES["failed"]
    store = wrap_store(store) if wrap_store else store
    workdir = Path(workdir or os.environ.get("TRAINOPS_WORKDIR")
                   or Path(tempfile.gettempdir()) / "trainops" / spec.job_id / f"attempt-{spec.attempt}")
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"attempt-{spec.attempt}.log"
    handlers = _log_to(log_path)
    attempt = Attempt(spec, store, key.rsplit("/", 1)[0], workdir, log_path)
    previous = _on_sigterm(attempt.signals)
    try:
        log.info("agent starts: job %s attempt %d (spec %s)", spec.job_id, spec.attempt, spec.spec_hash())
        if spec.job_credentials:
            log.info("writing the job's files with per-job credentials from the control plane")
        attempt.watchers.start()
        outcome = attempt.run()
        attempt.finish(outcome)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for handler in handlers:
            logging.getLogger("trainops").removeHandler(handler)
            handler.close()
    if outcome.state == "deadline" and os.environ.get("TRAINOPS_POWER_OFF_AT_DEADLINE") == "1":
        # On AWS the instance's shutdown behaviour is terminate: this ends the billing.
        subprocess.run(["shutdown", "-h", "now"], check=False)
    return outcome.code if outcome.code is not None else EXIT_CODES[outcome.state]


def _on_sigterm(signals: Signals):
    """The OS sends SIGTERM when the machine goes down: save like on a spot notice."""
    try:
        return signal.signal(signal.SIGTERM, lambda *_: signals.raise_reason("interrupted", "SIGTERM"))
    except ValueError:  # not the main thread (an in-process test runner): no handler
        return None


def _log_to(path: Path) -> list[logging.Handler]:
    logger = logging.getLogger("trainops")
    logger.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = [logging.FileHandler(path), logging.StreamHandler(sys.stderr)]
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return handlers


def _cache_dir() -> Path:
    return Path(os.environ.get("TRAINOPS_CACHE_DIR") or Path.home() / ".cache" / "trainops")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.agent", description=__doc__.split("\n")[0])
    parser.add_argument("--spec", required=True, help="URI of spec.json (s3://... or file://...)")
    parser.add_argument("--workdir", help="local scratch folder (default: $TRAINOPS_WORKDIR or a temp dir)")
    args = parser.parse_args(argv)
    return run(args.spec, args.workdir)


if __name__ == "__main__":
    sys.exit(main())
