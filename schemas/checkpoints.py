"""Where checkpoints live in the store, and which of them exist.

Both sides of the wire read this: the agent writes `checkpoints/step-N/` and its MANIFEST.json
last, the control plane decides recovery from the steps that have one. A checkpoint without a
manifest does not exist: its upload was cut off.

Layout of a job (`jobs/<id>/`). Every unit of work — one stage of one run — has a folder (its
"unit prefix") holding `checkpoints/step-N/` and `final/`, each with its MANIFEST.json:

    one run, stage sft (today's jobs)    jobs/<id>/checkpoints/step-N/   jobs/<id>/final/
    a sweep, stage sft                   jobs/<id>/runs/<run>/checkpoints/step-N/   .../runs/<run>/final/
    several stages, no sweep             jobs/<id>/stages/<stage>/checkpoints/step-N/   .../final/
    a sweep with several stages          jobs/<id>/runs/<run>/stages/<stage>/checkpoints/...

A stage that runs twice in one run (eval before and after rl) has one folder per time: its
first time under its name, the n-th under `<stage>-n` (`stages/eval/`, `stages/eval-2/`): see
`stage_units`.

A unit whose `final/MANIFEST.json` exists is done: a later attempt skips it. An interrupted unit
resumes from its own newest manifested step. A manifest records the step, the spec hash and
training fields, the world size (processes) it was taken at, and every file with its size and
sha256; a checkpoint resumes at any world size (the recipe stores consolidated state).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MANIFEST = "MANIFEST.json"
_STEP = re.compile(r"checkpoints/step-(\d+)/MANIFEST\.json$")


def unit_prefix(job_prefix: str, run: str | None = None, stage: str | None = None) -> str:
    """The folder of one stage of one run: `run` None for a job without a sweep, `stage` None
    for a job with the single stage sft."""
    prefix = job_prefix
    if run is not None:
        prefix += f"/runs/{run}"
    if stage is not None:
        prefix += f"/stages/{stage}"
    return prefix


@dataclass(frozen=True)
class Unit:
    key: str  # the folder name under stages/: unique within a run
    stage: str  # the recipe: prep | sft | rl | eval
    label: str | None = None  # an eval's place around rl: before_rl | after_rl


RECORD_STAGES = ("prep", "eval")  # their final/ is a record (a split, scores); every other stage's is a model


def stage_units(stages: list[str]) -> list[Unit]:
    """The units a run trains, in order. With rl and an eval after it, RL is judged by the same
    evaluation before and after it (the quote prices two): an eval is put right before rl when
    the stages have none there. A repeated stage gets `<stage>-n` as its key."""
    stages = list(stages)
    if "rl" in stages and "eval" in stages[stages.index("rl"):] and "eval" not in stages[:stages.index("rl")]:
        stages.insert(stages.index("rl"), "eval")
    rl_at = stages.index("rl") if "rl" in stages else None
    units, seen = [], {}
    for i, stage in enumerate(stages):
        seen[stage] = seen.get(stage, 0) + 1
        key = stage if seen[stage] == 1 else f"{stage}-{seen[stage]}"
        label = None
        if stage == "eval" and rl_at is not None:
            label = "before_rl" if i < rl_at else "after_rl"
        units.append(Unit(key, stage, label))
    return units


def manifested_steps(store, job_prefix: str) -> list[int]:
    """Steps that have a manifest directly under `<job_prefix>/checkpoints/`, newest first."""
    steps = (_STEP.search(key) for key in store.list(f"{job_prefix}/checkpoints/"))
    return sorted({int(m.group(1)) for m in steps if m}, reverse=True)


def any_manifested(store, job_prefix: str) -> int | None:
    """The newest manifested step of any unit of the job (sweep runs and stages included), or
    None: whether an interrupted job has anything to resume from."""
    steps = [int(m.group(1)) for key in store.list(f"{job_prefix}/") if (m := _STEP.search(key))]
    return max(steps) if steps else None
