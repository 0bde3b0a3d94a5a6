"""Measuring this machine for its quotes (issue 13): what GPUs it has, how fast the recipe trains
on it, how long an attempt takes to start and to end.

- `detect`: trainops.toml `[local]` when it says; else `torch.cuda` in a subprocess (the worker
  and the bot never import torch themselves).
- `calibrate`: the real agent, as the local provider runs it, on the built-in tiny model for a
  few steps; timed from the moment the process starts to the moment it exits.
- `learn_from_job`: a finished local job's own figures (its metrics log and its metered
  attempts), so the next quote uses what the last runs did.

Each result lands in the store's `local/profile.json` (workers/quoting/local_option.py).
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys

from schemas.config import TeamConfig
from schemas.errors import UserError
from schemas.job import JobSpec
from schemas.settings import Settings
from schemas.spec import TrainRequest
from schemas.store import Store, job_prefix, open_store
from workers.providers.local_pipeline import (
    StageCalibrationError,
    calibrate_stages,
    rows_of,
    run_agent,
    stage_measurements,
)
from workers.quoting.catalog import GPUS
from workers.quoting.jobplan import stages_of
from workers.quoting.local_option import LocalProfile, Measurement, read_profile, write_profile
from workers.quoting.workload import work_of

log = logging.getLogger(__name__)
# The rate is read over the second half, past the warm-up. 300 steps, not fewer: on a shared
# machine a 20-step stretch of the tiny model (about a second on 2 CPU cores) read anywhere from
# 0.8x to 1.3x the rate of a long run, and a job's quote inherits that error whole; 150 steps
# held it to about 10% (docs/local-quotes.md).
CALIBRATION_STEPS = 300
CALIBRATION_ROOT = "local/calibration"  # its own store root: the jobs/ folder stays ours
_DETECT = ("import json, torch; n = torch.cuda.device_count() if torch.cuda.is_available() else 0;"
           " print(json.dumps({'gpus': n, 'name': torch.cuda.get_device_name(0) if n else ''}))")


class CalibrationError(UserError):
    """The calibration run did not finish; the message says why and where its log is."""


def gpu_family(name: str) -> str:
    """"NVIDIA H100 80GB HBM3" -> "h100"; a GPU the catalog lacks keeps its own name."""
    low = name.lower()
    for family in sorted(GPUS, key=len, reverse=True):  # l40s before l4
        if family in low:
            return family
    return name or "cpu"


def detect(config: TeamConfig) -> tuple[int, str, str]:
    """(gpus, gpu, how it was found)."""
    if config.local.gpus is not None:
        gpus = config.local.gpus
        return gpus, config.local.gpu or ("cpu" if gpus == 0 else "gpu"), "trainops.toml [local]"
    try:
        done = subprocess.run([sys.executable, "-c", _DETECT], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError) as exc:
        log.warning("GPU detection failed (%s): taking this machine as CPU only", exc)
        return 0, "cpu", "detection failed: CPU only assumed"
    gpus = int(found["gpus"])
    return gpus, gpu_family(found["name"]) if gpus else "cpu", "torch.cuda"


def steady(rows: list[dict]) -> tuple[float, float, int] | None:
    """(seconds per step, fixed seconds, steps) of one attempt's metrics log (`t`: seconds since
    the agent started). The rate is read over the second half of the steps: the first few run
    slow while allocators and thread pools warm up. That warm-up is a fixed cost, so it is
    folded into the fixed seconds: the steady line extended back to the attempt's first step."""
    rows = [r for r in rows if isinstance(r.get("t"), (int, float)) and "step" in r]
    if len(rows) < 3:
        return None
    # From the row before the second half: N steps read over N intervals, so a window of whole
    # checkpoint periods (300 steps saving every 50) holds every save inside it (the one after
    # the last step never comes: a run's last step saves its final weights instead).
    half = rows[max(0, len(rows) // 2 - 1):]
    if len(half) < 2 or half[-1]["step"] <= half[0]["step"]:
        half = rows
    step_s = (half[-1]["t"] - half[0]["t"]) / (half[-1]["step"] - half[0]["step"])
    if step_s <= 0:
        return None
    steps = rows[-1]["step"] - rows[0]["step"] + 1
    return step_s, max(0.0, rows[-1]["t"] - steps * step_s), steps


def measure(rows: list[dict], billed_s: float, *, first_rows: list[dict] | None = None
            ) -> tuple[float, float, float] | None:
    """(seconds per step, setup, finish) from a metrics log and the seconds the attempt was
    billed. Setup: the fixed seconds before the steady training (warm-up included); finish:
    what came after the last step. `first_rows`: the first attempt's log, whose setup was a
    fresh start (a resumed attempt's also restores a checkpoint)."""
    found = steady(rows)
    if found is None:
        return None
    step_s, _fixed, _ = found
    first = steady(first_rows) if first_rows else None
    setup_s = (first or found)[1]
    last_t = max(r["t"] for r in rows if isinstance(r.get("t"), (int, float)))
    finish_s = max(0.0, billed_s - last_t)
    return step_s, setup_s, finish_s


def _measurement(request: TrainRequest, config: TeamConfig, figures, source: str,
                 through_monitor: bool) -> Measurement:
    step_s, setup_s, finish_s = figures
    return Measurement(
        source=source, model=request.model, method=request.method, precision=request.precision,
        seq_len=request.seq_len, batch_size=request.batch_size,
        flops_per_token=work_of(request, config).flops_per_token(False), step_s=step_s,
        setup_s=setup_s, finish_s=finish_s, through_monitor=through_monitor)


def calibration_request(gpus: int, config: TeamConfig) -> TrainRequest:
    return TrainRequest(text="calibration", model="tiny", data="demo", budget_usd=1, cap_usd=1,
                        seq_len=256, batch_size=8, epochs=1000, max_steps=CALIBRATION_STEPS,
                        peft="lora", precision="fp32" if gpus == 0 else "bf16")


def calibrate(settings: Settings, config: TeamConfig, *, steps: int = CALIBRATION_STEPS,
              say=lambda line: None, stages: bool = True) -> LocalProfile:
    """Detect the GPUs, run the agent for `steps` steps of the tiny model, record the result;
    then (`stages`) what a pipeline needs beyond SFT steps (local_pipeline.py)."""
    store = open_store(settings.store)
    gpus, gpu, how = detect(config)
    say(f"this machine: {'no GPU' if gpus == 0 else f'{gpus}×{gpu}'} ({how}); running the tiny "
        f"model for {steps} steps to measure it")
    request = calibration_request(gpus, config).model_copy(update={"max_steps": steps})
    job_id = f"calibrate-{secrets.token_hex(3)}"
    root = open_store(f"{store.uri.rstrip('/')}/{CALIBRATION_ROOT}")
    spec = JobSpec(job_id=job_id, store_uri=f"{root.uri}/{job_prefix(job_id)}",
                   model=request.model, data=request.data, method=request.method,
                   precision=request.precision, seq_len=request.seq_len,
                   batch_size=request.batch_size, epochs=request.epochs, max_steps=steps)
    # Checkpoints at a job's own cadence (JobSpec's default, which every job runs with): a job
    # pauses for a save every 50 steps, so the rate measured here carries those saves as a job's
    # does. Without them the tiny model's steps read 10% faster than a job's (0.0387 against
    # 0.0428 s over 300 steps), and every local quote came out short by that much.
    try:
        billed_s, rows = run_agent(root, spec)
    except StageCalibrationError as exc:
        raise CalibrationError(str(exc)) from exc
    figures = measure(rows, billed_s)
    if figures is None:
        raise CalibrationError(f"the calibration run logged {len(rows)} steps; too few to measure")
    m = _measurement(request, config, figures, "calibration", through_monitor=False)
    profile = (read_profile(store) or LocalProfile()).model_copy(
        update={"gpus": gpus, "gpu": gpu, "detected": how})
    profile = profile.add(m)
    write_profile(store, profile)
    say(f"measured: {m.step_s:.3f} s a step ({m.tokens_per_s:,.0f} tokens/s), setup "
        f"{m.setup_s:.1f} s, finish {m.finish_s:.1f} s")
    if stages:
        profile = _stages(store, config, profile, say)
    return profile


def _stages(store: Store, config: TeamConfig, profile: LocalProfile, say) -> LocalProfile:
    root = open_store(f"{store.uri.rstrip('/')}/{CALIBRATION_ROOT}")
    try:
        profile = calibrate_stages(root, config, profile, say=say)
    except StageCalibrationError as exc:
        raise CalibrationError(str(exc)) from exc
    write_profile(store, profile)
    return profile


def ensure_profile(settings: Settings, config: TeamConfig, say=lambda line: None,
                   request: TrainRequest | None = None) -> LocalProfile:
    """The profile in the store, or a calibration run when there is none yet (first use). What
    a pipeline or a sweep needs beyond SFT steps is measured on the first such `request` (a
    profile from before stages were measured, too); an SFT run's first use stays short."""
    store = open_store(settings.store)
    profile = read_profile(store)
    staged = request is not None and bool(request.sweep_key or stages_of(request) != ["sft"])
    if profile is None or not profile.measurements:
        return calibrate(settings, config, say=say, stages=staged)
    if staged and not profile.measures_stages:
        return _stages(store, config, profile, say)
    return profile


def learn_from_job(store: Store, config: TeamConfig, job_id: str, request: TrainRequest,
                   attempts: list) -> Measurement | None:
    """A finished local job's figures into the profile: its training rate over every attempt,
    the first attempt's setup (a fresh start), the last attempt's finish (as metered). A
    pipeline's run in one attempt teaches its stages' fixed costs instead (None returned)."""
    if request.sweep_key or stages_of(request) != ["sft"]:
        profile = read_profile(store)
        rows = rows_of(store.read_bytes(f"{job_prefix(job_id)}/logs/metrics-attempt-1.jsonl"))
        if profile is None or not profile.measures_stages or len(attempts) != 1 \
                or request.sweep_key:  # a sweep's runs may overlap on GPUs: not one stage at a time
            return None
        found = stage_measurements(rows, request, config, profile, f"job {job_id}")
        if found:
            write_profile(store, profile.add_stages(found))
        return None
    logs = {a.attempt: rows_of(store.read_bytes(
        f"{job_prefix(job_id)}/logs/metrics-attempt-{a.attempt}.jsonl")) for a in attempts}
    last = attempts[-1]
    if last.launched_at is None or last.ended_at is None:
        return None
    billed_s = (last.ended_at - last.launched_at).total_seconds()
    figures = measure(logs.get(last.attempt, []), billed_s,
                      first_rows=logs.get(attempts[0].attempt))
    if figures is None:
        return None
    # Seconds per step over every attempt's steady stretch, weighted by its steps.
    spans = [found for r in logs.values() if (found := steady(r)) is not None]
    if spans:
        figures = (sum(s * n for s, _, n in spans) / sum(n for *_, n in spans), *figures[1:])
    m = _measurement(request, config, figures, f"job {job_id}", through_monitor=True)
    profile = read_profile(store)
    if profile is None:
        return None  # a machine never calibrated: its first calibration makes the profile
    write_profile(store, profile.add(m))
    return m
