"""The recipe path of an attempt: every run of the sweep (or the one run), every stage in order,
on every GPU of the machine.

GPUs: nproc = spec.nproc_per_node, else every GPU torch sees, else 1 (CPU). A sweep of R runs
gets gpus_per_run = nproc // R (at least 1) and nproc // gpus_per_run slots; runs beyond the
slots queue and start as slots free up. Each run trains its stages in order in its own folder
(schemas/checkpoints.py: unit_prefix); a unit whose final/ manifest exists is skipped, any other
resumes from its own newest verified checkpoint. Once a reason to stop is raised, running
children stop after one checkpoint each and queued runs do not start.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from schemas.checkpoints import MANIFEST, RECORD_STAGES, Unit, stage_units, unit_prefix
from schemas.errors import UserError
from schemas.job import JobSpec, RunProgress
from training.agent.launch import Relay, StageRun, gpu_count, run_stage
from training.agent.reward import check_team_reward
from training.agent.runtime import MIN_DEADLINE_MARGIN_S
from training.agent.sync import (
    Uploader,
    check_spec,
    download_dir,
    fetch_latest,
    retry,
    seed_from,
    spec_meta,
    upload_dir,
)

log = logging.getLogger("trainops.agent")


@dataclass
class RunResult:
    name: str | None
    result: str = "queued"  # done | a reason | bad_input | failed | queued (never started)
    step: int = 0
    loss: float | None = None
    error: str | None = None
    output: str | None = None  # the store URI of the last stage's final/
    model_output: str | None = None  # ... of the last stage that made a model (not prep, eval)
    # That stage's name, last step and loss: a pipeline's result is its model (rl's), so its
    # "finished at step N, loss L" must be rl's, not the eval's that came after it.
    model_stage: str | None = None
    model_step: int = 0
    model_loss: float | None = None
    uploaders: list = field(default_factory=list)


def run_spec(spec: JobSpec, overrides: dict) -> JobSpec:
    """The spec one run trains: the job's spec with the run's overrides, validated."""
    try:
        return JobSpec.model_validate({**spec.model_dump(), **overrides, "runs": []})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"sweep value {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


class Plan:
    def __init__(self, attempt):
        self.attempt = attempt
        spec = attempt.spec
        self.spec, self.store, self.prefix = spec, attempt.store, attempt.prefix
        self.sweep = bool(spec.runs)
        from training.recipes import module_of

        for stage in spec.stages:  # a typo must fail now, not after hours of the stages before it
            module_of(stage)
        twice = {s for s in spec.stages if s != "eval" and spec.stages.count(s) > 1}
        if twice:
            raise UserError(f"stages {spec.stages} name {', '.join(sorted(twice))} twice; only eval may "
                            "run more than once (before and after rl)")
        self.units = stage_units(spec.stages)
        check_team_reward(spec)  # a team's reward that raises fails the job now, before any training
        names = [r.name for r in spec.runs]
        if len(set(names)) != len(names):
            raise UserError(f"sweep runs {names} repeat a name; each run needs its own folder")
        visible = gpu_count()
        self.nproc = spec.nproc_per_node or visible or 1
        if visible and self.nproc > visible:
            raise UserError(f"nproc_per_node={self.nproc} but this machine has {visible} GPU(s); "
                            f"use at most {visible}, or leave it unset to use them all")
        runs = spec.runs or [None]
        self.per_run = max(1, self.nproc // len(runs))
        self.slots = max(1, self.nproc // self.per_run)
        self.devices = [list(range(i * self.per_run, (i + 1) * self.per_run)) if visible else None
                        for i in range(self.slots)]
        self.relay = Relay(attempt.signals)
        self.results = {(r.name if r else None): RunResult(r.name if r else None) for r in runs}
        self.specs = {(r.name if r else None): run_spec(spec, r.overrides) if r else spec for r in runs}
        if self.sweep:
            attempt.tracker.runs = {r.name: RunProgress(name=r.name, stage=spec.stages[0]) for r in spec.runs}
        log.info("%d process(es) on %s; %d run(s), %d at a time, %d process(es) each",
                 self.nproc, f"{visible} GPU(s)" if visible else "CPU", len(runs), self.slots, self.per_run)

    # -- the whole attempt -----------------------------------------------------------------------
    def run(self) -> list[RunResult]:
        todo: queue.Queue = queue.Queue()
        for name in self.results:
            todo.put(name)

        def slot(devices):
            while not self.attempt.signals.check():
                try:
                    name = todo.get_nowait()
                except queue.Empty:
                    return
                self._run_one(name, devices)

        threads = [threading.Thread(target=slot, args=(d,), name=f"slot-{i}", daemon=True)
                   for i, d in enumerate(self.devices)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return list(self.results.values())

    def _run_one(self, name: str | None, devices) -> None:
        result, spec = self.results[name], self.specs[name]
        self._set_run(name, state="running")
        stage_input: Path | None = None
        model: str | None = None  # the store URI of the newest model a stage of this run made
        try:
            for n, unit in enumerate(self.units):
                if reason := self.attempt.signals.check():  # no new stage once told to stop
                    result.result = reason
                    break
                # rl and eval start from the newest model before them (sft's, or rl's for the
                # eval after it); prep's and eval's outputs are records, never weights.
                unit_spec = spec.model_copy(update={"init_from": model}) \
                    if model and unit.stage in ("rl", "eval") else spec
                stage_input = self._run_stage(name, unit_spec, unit, devices, stage_input,
                                              last=n == len(self.units) - 1)
                if result.result != "done":
                    break
                if unit.stage not in RECORD_STAGES:
                    model = result.output
                    result.model_output, result.model_stage = model, unit.stage
                    result.model_step, result.model_loss = result.step, result.loss
        except UserError as exc:
            result.result, result.error = "bad_input", str(exc)
        except Exception as exc:  # one run's crash must not take the sweep's other runs down
            log.exception("run %s failed", name or "main")
            result.result, result.error = "failed", f"{type(exc).__name__}: {exc}"
        state = {"done": "succeeded", "bad_input": "failed", "orphaned": "failed"}.get(result.result, result.result)
        self._set_run(name, state=state)
        log.info("run %s: %s at step %d", name or "main", state, result.step)

    def _run_stage(self, name, spec: JobSpec, unit: Unit, devices, stage_input: Path | None,
                   last: bool) -> Path | None:
        from training.recipes import module_of

        result, stage = self.results[name], unit.stage
        multi = len(self.units) > 1
        prefix = unit_prefix(self.prefix, name if self.sweep else None, unit.key if multi else None)
        label = "/".join(x for x in (name, unit.key if multi else None) if x) or "main"
        local = self.attempt.workdir / ("units/" + label if label != "main" else "")
        meta = {**spec_meta(spec), "world_size": self.per_run,
                **({"run": name} if name else {}), **({"stage": unit.key} if multi else {})}
        final = self._final_manifest(prefix, spec)
        if final is not None:  # done in an earlier attempt: never trained twice
            log.info("%s: final/ is in the store (step %d): skipped", label, final["step"])
            result.result, result.step, result.loss = "done", final["step"], final.get("loss")
            result.output = f"{self.store.uri}/{prefix}/final/"
            if last:
                return None
            # A later stage starts from this one's result: bring it back to this machine.
            retry(lambda: download_dir(self.store, f"{prefix}/final", local / "final", f"{label} final"),
                  what=f"{label} final download")
            return local / "final"
        uploader = self._uploader(prefix, meta)
        result.uploaders.append(uploader)
        resume = self._resume(prefix, spec, uploader, local / "resume", first=unit == self.units[0] and not self.sweep)
        spec_path = local / "spec.json"
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(spec.model_dump_json())
        self._set_run(name, stage=stage)
        env = {"TRAINOPS_STAGE_INPUT": str(stage_input)} if stage_input else {}
        ended: StageRun = run_stage(
            module=module_of(stage), spec_path=spec_path, workdir=local, nproc=self.per_run,
            devices=devices, resume_dir=resume, relay=self.relay,
            on_row=self._on_row(name, unit if multi or stage != "sft" else None, uploader),
            uploader=uploader, log_path=self.attempt.log_path, grace_s=spec.grace_s,
            cache_dir=self.attempt.cache_dir, env=env)
        result.result, result.step, result.loss, result.error = ended.result, ended.step, ended.loss, ended.error
        if ended.result == "bad_input":
            raise UserError(ended.error or "the recipe refused its input")
        if ended.result != "done":
            return None
        self.attempt.tracker.phase = "save"
        retry(lambda: upload_dir(self.store, f"{prefix}/final", local / "final", ended.step,
                                 {**meta, "loss": ended.loss}), what=f"{label} final upload")
        result.output = f"{self.store.uri}/{prefix}/final/"
        return local / "final"

    # -- pieces ----------------------------------------------------------------------------------
    def _final_manifest(self, prefix: str, spec: JobSpec) -> dict | None:
        blob = self.store.read_bytes(f"{prefix}/final/{MANIFEST}")
        if blob is None:
            return None
        manifest = json.loads(blob)
        check_spec(manifest, spec, f"{self.store.uri}/{prefix}/final")
        return manifest

    def _uploader(self, prefix: str, meta: dict) -> Uploader:
        if prefix == self.prefix:  # today's layout: the attempt's own uploader (progress reads it)
            uploader = self.attempt.uploader
            uploader.meta = meta
            return uploader
        uploader = Uploader(self.store, prefix, self.spec.keep_checkpoints, meta=meta)
        if not self.sweep:  # one unit at a time: progress and status report the current one
            self.attempt.uploader.close()
            self.attempt.uploader = self.attempt.tracker.uploader = uploader
        return uploader

    def _resume(self, prefix: str, spec: JobSpec, uploader, local_root: Path, first: bool) -> Path | None:
        if first and spec.resume_from:  # /train resume: the old job's checkpoint becomes ours first
            seed_from(self.store, prefix, spec.resume_from, local_root / "seed")
        found = fetch_latest(self.store, prefix, local_root)
        if found is None:
            log.info("%s: no checkpoint in the store: starting from scratch", prefix)
            return None
        manifest, local_dir = found
        check_spec(manifest, spec, f"{self.store.uri}/{prefix}/checkpoints")
        uploader.uploaded_step = manifest["step"]
        log.info("%s: resuming from checkpoint step-%d (taken on %s process(es))", prefix,
                 manifest["step"], manifest.get("world_size", 1))
        return local_dir

    def _on_row(self, name: str | None, unit: Unit | None, uploader):
        tracker, signals = self.attempt.tracker, self.attempt.signals
        # Metrics lines say which run (a sweep) and which stage (several) a step belongs to.
        tag = {**({"run": name} if name else {}), **({"stage": unit.stage} if unit else {})}

        def on_row(row: dict) -> None:
            if "checkpoint" in row:
                # Stop early enough before the deadline for a save and an upload, twice over.
                signals.margin_s = max(MIN_DEADLINE_MARGIN_S, signals.margin_s,
                                       2 * (float(row.get("save_s") or 0) + uploader.last_upload_s))
            elif "loss" in row and "step" in row:
                self._set_run(name, step=row["step"], total_steps=row.get("total_steps") or 0, loss=row["loss"])
                tracker.record(int(row["step"]), row["loss"], int(row.get("tokens") or 0),
                               lr=row.get("lr"), **tag, **step_figures(row.get("metrics"), unit))
            elif row.get("phase") == "train":
                self._set_run(name, step=row.get("step", 0), total_steps=row.get("total_steps", 0))
                if not name:
                    tracker.total_steps = int(row.get("total_steps") or 0)
                tracker.start_training(int(row.get("step") or 0), int(row.get("tokens_seen") or 0), again=bool(name))
            elif "phase" in row and not name:
                tracker.phase = row["phase"]
        return on_row

    def _set_run(self, name: str | None, **fields) -> None:
        if name is not None:
            self.attempt.tracker.update_run(name, **fields)


def step_figures(metrics: dict | None, unit: Unit | None) -> dict:
    """A recipe's own figures for a metrics line: rl's reward, prep's counts as they are; an
    eval's as the `eval` row the reports read, labelled by its place around rl."""
    figures = {k: v for k, v in (metrics or {}).items() if k != "stage"}
    if unit is None or unit.stage != "eval" or not figures:
        return figures
    return {"eval": {"mean_reward": figures.get("mean_reward"), "pass_rate": figures.get("pass_rate"),
                     "loss": figures.get("eval_loss"), "scored": figures.get("scored"),
                     "label": unit.label or "eval"}}
