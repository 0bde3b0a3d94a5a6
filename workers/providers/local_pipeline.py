"""What a pipeline needs measured on this machine beyond SFT steps (issue 13), and running the
real agent for a measurement.

- `measure_decode`: the tiny model, with the adapter the calibration pipeline's sft stage
  trained (the model rl and eval start from), generating as the rl and eval recipes do
  (training/recipes/policy.sample), in a subprocess (the worker never imports torch), at the
  batch sizes a pipeline decodes at: one sequence (eval's reference forwards), eval's batch,
  rl's batch x n_samples. Seconds per token asked for at each (completions that end early
  take less).
- `calibrate_stages`: the real agent on a small pipeline (prep, sft, eval, rl, eval) of the tiny
  model and the bundled RL tasks; each stage's fixed cost is its wall time less its work at
  the measured rates (`stage_measurements`), the same rule the quote adds them up by.
- `stage_measurements` also reads a finished local pipeline's metrics log (learn_from_job).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from schemas.config import TeamConfig
from schemas.errors import UserError
from schemas.job import AgentStatus, JobSpec
from schemas.settings import environment
from schemas.spec import TrainRequest
from schemas.store import Store, job_prefix, read_model, write_model
from training.agent.env import agent_env
from workers.providers.local import agent_python_path
from workers.quoting.local_option import speed
from workers.quoting.local_profile import DecodeMeasurement, LocalProfile, StageMeasurement
from workers.quoting.local_stages import rates, unit_work
from workers.quoting.workload import work_of

TIMEOUT_S = 600.0
PIPELINE_STAGES = ["prep", "sft", "eval", "rl", "eval"]
_DECODE = """
import json, sys, tempfile, time
from pathlib import Path
from schemas.job import JobSpec
from training.recipes.model import load_tokenizer, placement
from training.recipes.policy import fetch_init, load_policy, sample
from training.recipes.tasks import prompt_text
spec = JobSpec.model_validate_json(sys.argv[1])
tok = load_tokenizer(spec)
where = placement(spec)
model = load_policy(spec, tok, where, fetch_init(spec.init_from, Path(tempfile.mkdtemp())))
prompt = prompt_text(tok, "What is 7 + 8?")
out = []
sample(model, tok, [prompt], 1, spec.max_new_tokens, 1.0, where.device)  # warm-up, not timed
for prompts, n in json.loads(sys.argv[2]):
    started = time.perf_counter()
    groups = sample(model, tok, [prompt] * prompts, n, spec.max_new_tokens, 1.0, where.device,
                    greedy=n == 1)
    seconds = time.perf_counter() - started
    steps = max(length for group in groups for _, length in group)
    out.append({"batch": prompts * n, "steps": steps, "seconds": seconds,
                "new_tokens": spec.max_new_tokens})
print(json.dumps(out))
"""


class StageCalibrationError(UserError):
    """A stage measurement did not finish; the message says why."""


def pipeline_request(gpus: int) -> TrainRequest:
    """The calibration pipeline: the demo's shape (bot/demo/pipeline.py): four rl steps and
    two eval steps, so both have a step time to read."""
    return TrainRequest(text="calibration", model="tiny", data="demo-rl", budget_usd=1, cap_usd=1,
                        stages=PIPELINE_STAGES, seq_len=64, batch_size=8, samples=64, epochs=1,
                        eval_samples=16, num_tasks=32, n_samples=4, reward="numeric",
                        peft="lora", precision="fp32" if gpus == 0 else "bf16")


def spec_of(request: TrainRequest, job_id: str, root: Store) -> JobSpec:
    return JobSpec(job_id=job_id, store_uri=f"{root.uri}/{job_prefix(job_id)}",
                   model=request.model, data=request.data, method=request.method,
                   precision=request.precision, seq_len=request.seq_len,
                   batch_size=request.batch_size, max_samples=request.samples,
                   epochs=request.epochs, max_steps=request.max_steps,
                   stages=list(request.stages) or ["sft"], eval_samples=request.eval_samples or 0,
                   num_tasks=request.num_tasks, n_samples=request.n_samples or 4,
                   reward=request.reward or "exact",
                   checkpoint_every_steps=10**6, checkpoint_every_s=1e6)


def run_agent(root: Store, spec: JobSpec, keep: bool = False) -> tuple[float, list[dict]]:
    """The real agent on `spec`, started exactly as the local provider starts a job's (its own
    session, its own scratch folder, the provider's environment allow-list): (seconds from its
    start to its exit, its metrics rows). The job's files are removed afterwards (`keep`: by
    the caller, with `forget`)."""
    prefix = job_prefix(spec.job_id)
    write_model(root, f"{prefix}/spec.json", spec)
    with tempfile.TemporaryDirectory(prefix="trainops-calibrate-") as work:
        log_path = Path(work) / "agent.log"
        started = time.monotonic()
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "training.agent", "--spec", f"{root.uri}/{prefix}/spec.json"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=os.getcwd(),
                env=agent_env(environment(), root.uri, PYTHONPATH=agent_python_path()))
            try:
                code = proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        took = time.monotonic() - started
        shutil.rmtree(Path(tempfile.gettempdir()) / "trainops" / spec.job_id, ignore_errors=True)
        status = read_model(root, f"{prefix}/status.json", AgentStatus)
        if code != 0 or status is None or status.state != "succeeded":
            tail = log_path.read_text(errors="replace").splitlines()[-3:]
            raise StageCalibrationError(f"the calibration run ended with code {code}: "
                                        + " | ".join(tail))
    rows = rows_of(root.read_bytes(f"{prefix}/logs/metrics-attempt-1.jsonl"))
    if not keep:
        forget(root, spec.job_id)
    return took, rows


def forget(root: Store, job_id: str) -> None:
    for key in root.list(f"{job_prefix(job_id)}/"):
        root.delete(key)


def rows_of(raw: bytes | None) -> list[dict]:
    out = []
    for line in (raw or b"").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def measure_decode(request: TrainRequest, root: Store, init_from: str | None = None
                   ) -> list[DecodeMeasurement]:
    """Generation at the pipeline's batch sizes, by the model rl and eval start from
    (`init_from`: the calibration pipeline's sft output), so completions end as theirs do."""
    spec = spec_of(request, "decode", root).model_copy(update={"init_from": init_from})
    n = request.n_samples or 4
    shapes = [[1, 1], [request.batch_size, 1], [request.batch_size, n]]
    done = subprocess.run([sys.executable, "-c", _DECODE, spec.model_dump_json(), json.dumps(shapes)],
                          capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
                          env=agent_env(environment(), root.uri, PYTHONPATH=agent_python_path()))
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise StageCalibrationError("the decode measurement failed: "
                                    + " | ".join(done.stderr.splitlines()[-3:])) from exc
    return [DecodeMeasurement(source="calibration", model=request.model, **f) for f in found]


def stretches(rows: list[dict]) -> list[tuple[str, float, float, int]]:
    """(stage, seconds at its first row, at its last row, steps) of each stretch of one stage,
    in order."""
    out: list[list] = []
    for r in sorted((r for r in rows if isinstance(r.get("t"), (int, float)) and r.get("stage")),
                    key=lambda r: r["t"]):
        if out and out[-1][0] == r["stage"]:
            out[-1][2], out[-1][3] = r["t"], out[-1][3] + 1
        else:
            out.append([r["stage"], r["t"], r["t"], 1])
    return [tuple(x) for x in out]


def stage_measurements(rows: list[dict], request: TrainRequest, config: TeamConfig,
                       profile: LocalProfile, source: str) -> list[StageMeasurement]:
    """Each stage's fixed cost: its wall time (from the previous stage's last row; the first
    from the agent's start) less its work: sft at the steps it logged x the measured step; rl
    and eval at their own measured step (first row to last over the steps between) when they
    logged two or more, which also gives their factor over the model of a step; else as
    modelled. Nothing when the log is not one pass of the request's stages (a resumed attempt)."""
    from schemas.checkpoints import stage_units
    from workers.quoting.jobplan import stages_of

    found = stretches(rows)
    if [s for s, *_ in found] != [u.stage for u in stage_units(stages_of(request))]:
        return []
    work = work_of(request, config)
    s = speed(profile, request, work, 0.0)
    rt = replace(rates(profile, s.step_s, s.slow_step_s, False, 1.0), factors={})
    out, before = [], 0.0
    for i, (stage, first_t, last_t, steps) in enumerate(found):
        phases, _ = unit_work(stage, request, work, rt)
        modelled, factor = sum(phases.values()), None
        if stage == "sft":
            done = steps * rt.step_s
        elif stage in ("rl", "eval") and steps >= 2 and last_t > first_t and modelled > 0:
            done = (last_t - first_t) / (steps - 1) * steps
            factor = done / modelled
        else:
            done = modelled
        wall = last_t - before
        out.append(StageMeasurement(source=source, stage=stage, first=i == 0,
                                    fixed_s=max(0.0, wall - done), wall_s=wall, factor=factor))
        before = last_t
    return out


def calibrate_stages(root: Store, config: TeamConfig, profile: LocalProfile,
                     say=lambda line: None) -> LocalProfile:
    """Decode rates, then the calibration pipeline's stage starts, into the profile."""
    request = pipeline_request(profile.gpus)
    say("measuring what a pipeline needs: each stage's start (prep, sft, eval, rl, eval on "
        "the tiny model), then generation speed from its sft stage's model")
    job_id = f"calibrate-{secrets.token_hex(3)}"
    _, rows = run_agent(root, spec_of(request, job_id, root), keep=True)
    try:
        sft = f"{root.uri}/{job_prefix(job_id)}/stages/sft/final/"
        profile = profile.add_decode(measure_decode(request, root, init_from=sft))
    finally:
        forget(root, job_id)
    found = stage_measurements(rows, request, config, profile, "calibration")
    if not found:
        raise StageCalibrationError(f"the calibration pipeline logged {len(rows)} rows, not one "
                                    "pass of its stages; nothing to measure")
    profile = profile.add_stages(found)
    say("measured: decoding " + ", ".join(
        f"{d.step_s * 1000:.0f} ms a token asked at batch {d.batch} ({d.steps} of {d.new_tokens}"
        " decoded)" for d in profile.decode[-3:])
        + "; stage starts " + ", ".join(
            f"{m.stage} {m.fixed_s:.1f} s" + (f" (steps ×{m.factor:.1f} the model of them)"
                                              if m.factor else "") for m in found))
    return profile
