"""The local option for pipelines and sweeps (issue 13): every stage of every run priced from what
this machine measured. Pure. docs/local-quotes.md says what is measured and what is modelled.

A unit is one stage of one run, as the agent runs it (training/agent/plan.py: each a child
process, in order). Its time is its fixed cost plus its work at the measured rates:

- fixed: what the stage takes besides its work (the child starting, the model loading, the
  previous stage's final save), the median of the measured fixed costs of that stage; the job's
  first unit has the agent's own start in it and is measured apart.
- work: prep has none beyond its fixed cost (reading and tokenising the data is in it); sft is
  steps x the measured seconds per step; eval and rl count the tokens the recipes decode, the
  reference answers eval scores and the sequences rl trains on, each at its measured rate,
  times what their own steps measured beyond that model (their factor, local_rates.py).

The figures the recipes use when the request leaves one out are the agent's (JobSpec defaults),
not the AWS estimator's larger planning defaults: the quote is for what this agent will run.
A sweep's runs take the GPUs as the agent gives them (nproc // runs each, the rest queued); on a
machine without a GPU that is one run after another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from schemas.checkpoints import stage_units
from schemas.config import TeamConfig
from schemas.job import JobSpec
from schemas.spec import QuoteOption, TrainRequest
from workers.quoting.generation import BUILTIN_REWARD_S, CUSTOM_REWARD_S, DEFAULT_TASKS, rl_tasks
from workers.quoting.jobplan import ORDER, stages_of, sweep_runs
from workers.quoting.local_profile import SINGLE_MEASUREMENT_P90, LocalProfile
from workers.quoting.local_rates import Rates, decode_scale_of, rates
from workers.quoting.rewards import is_user_reward
from workers.quoting.workload import Work, trainable_rows, work_of

BESTOFN_PROMPTS_PER_CALL = 16  # training/recipes/bestofn.py GENERATE_BATCH
AGENT = {k: JobSpec.model_fields[k].default for k in ("n_samples", "top_k", "rounds",
                                                      "max_new_tokens")}


@dataclass
class Unit:
    run: str
    stage: str
    fixed_s: float
    phases: dict[str, float]  # work seconds by phase
    what: str = ""
    first: bool = False

    @property
    def total_s(self) -> float:
        return self.fixed_s + sum(self.phases.values())


@dataclass
class Plan:
    units: list[Unit] = field(default_factory=list)
    wall_s: float = 0.0  # from the agent's start to the last step
    run_s: dict[str, float] = field(default_factory=dict)
    gpus_per_run: int = 1
    slots: int = 1


def _eval(r: TrainRequest, work: Work, rt: Rates) -> tuple[dict, str]:
    new = AGENT["max_new_tokens"]
    rows, b = r.eval_samples or 0, r.batch_size
    steps, last = divmod(rows, b)
    decode = (steps * rt.decode_s(b) + (rt.decode_s(last) if last else 0.0)) * new
    # Each reference answer: one forward pass of batch 1 (a decode step's overhead) and its
    # FLOPs, 2 per parameter per token, at the measured training rate.
    forward = rows * (rt.decode_s(1) + 2.0 * work.shape.params * r.seq_len / rt.flops_per_s)
    scoring = rows * (CUSTOM_REWARD_S if is_user_reward(r.reward) else BUILTIN_REWARD_S)
    what = f"{rows} held-out prompts, {new} tokens each decoded {b} at a time"
    return {"eval": decode + forward + scoring}, what


def _rl(r: TrainRequest, work: Work, rt: Rates) -> tuple[dict, str]:
    new = AGENT["max_new_tokens"]
    n = r.n_samples or AGENT["n_samples"]
    tasks = rl_tasks(r)
    assumed = "" if r.num_tasks or trainable_rows(r) is not None else (
        f" ({DEFAULT_TASKS} assumed: say num_tasks=N)")
    prompt = max(1, min(r.seq_len - new, new))
    reward_s = CUSTOM_REWARD_S if is_user_reward(r.reward) else BUILTIN_REWARD_S
    per_token = work.flops_per_token(False)
    if r.rl_method == "best_of_n":
        top_k, rounds = r.top_k or AGENT["top_k"], r.rounds or AGENT["rounds"]
        per_round = max(1, math.ceil(tasks * top_k * r.epochs / r.batch_size))
        steps = rounds * per_round if r.max_steps is None else min(rounds * per_round,
                                                                    r.max_steps)
        done_rounds = math.ceil(steps / per_round)
        calls, left = divmod(tasks, BESTOFN_PROMPTS_PER_CALL)
        one = (calls * rt.decode_s(BESTOFN_PROMPTS_PER_CALL * n)
               + (rt.decode_s(left * n) if left else 0.0)) * new
        return ({"generation": done_rounds * (one + tasks * n * reward_s),
                 "train": steps * rt.step_s},
                f"best_of_n: {done_rounds} round(s) of {tasks} tasks{assumed} × {n} samples, "
                f"{steps} fine-tune steps on the best {top_k}")
    steps = max(1, math.ceil(tasks * r.epochs / r.batch_size))
    if r.max_steps is not None:
        steps = min(steps, r.max_steps)
    seqs = r.batch_size * n
    update = seqs * (prompt + new) * per_token / rt.flops_per_s
    return ({"generation": steps * (new * rt.decode_s(seqs) + seqs * reward_s),
             "policy_update": steps * update},
            f"grpo: {steps} steps of {r.batch_size} tasks{assumed} × {n} completions, "
            f"{new} tokens each")


def unit_work(stage: str, r: TrainRequest, work: Work, rt: Rates) -> tuple[dict, str]:
    """A unit's work seconds by phase, and what it is in words."""
    if stage == "prep":
        return {}, "the agent's start, reading the data, tokenising it"
    if stage == "sft":
        return ({"train": work.steps * rt.step_s},
                f"{work.steps} steps × {rt.step_s:.3f} s")
    phases, what = (_eval if stage == "eval" else _rl)(r, work, rt)
    f = rt.factor(stage)  # what its steps measured beyond the model of them (local_rates.py)
    return {k: v * f for k, v in phases.items()}, what + (f", ×{f:.1f} as measured" if f != 1
                                                          else "")


def plan(request: TrainRequest, works: dict[str, Work], profile: LocalProfile, rt: Rates
         ) -> Plan | str:
    """Every unit of every run on this machine, and the wall time: a Plan, or why not."""
    runs = sweep_runs(request)
    stages = [u.stage for u in stage_units(stages_of(request))]
    nproc = profile.gpus or 1
    per_run = max(1, nproc // len(runs))
    slots = max(1, nproc // per_run)
    slower = nproc / per_run  # a run on a share of the GPUs the rates were measured on
    out = Plan(gpus_per_run=per_run if profile.gpus else 0, slots=slots)
    free = [0.0] * slots
    for i, (name, overrides) in enumerate(runs):
        r = request.model_copy(update=overrides) if overrides else request
        slot = free.index(min(free))
        first_here = i < slots
        took = 0.0
        for j, stage in enumerate(stages):
            first = first_here and j == 0
            fixed = rt.fixed_s(stage, first)
            if fixed is None:
                return (f"the {stage} stage's start is not measured on this machine yet: "
                        "`trainops calibrate` measures it")
            phases, what = unit_work(stage, r, works[name], rt)
            unit = Unit(name, stage, fixed, {k: v * slower for k, v in phases.items()}, what,
                        first)
            out.units.append(unit)
            took += unit.total_s
        out.run_s[name] = took
        free[slot] += took
    out.wall_s = max(free)
    return out


def staged_option(request: TrainRequest, config: TeamConfig, profile: LocalProfile, s,
                  base: dict, hourly_usd: float, billing) -> QuoteOption:
    """The option for a pipeline or a sweep: `s` is the sft Speed of this request's shape
    (local_option.speed), `base` the option's price fields."""
    works = {name: work_of(request.model_copy(update=o) if o else request, config)
             for name, o in sweep_runs(request)}
    margin = 1 + SINGLE_MEASUREMENT_P90
    scale, scaled = decode_scale_of(request, config, profile)
    expected = plan(request, works, profile, rates(profile, s.step_s, s.slow_step_s, False,
                                                   margin, scale))
    slow = plan(request, works, profile, rates(profile, s.step_s, s.slow_step_s, True, margin,
                                               scale))
    if isinstance(expected, str) or isinstance(slow, str):
        return QuoteOption(**base, hours=0.0, cost_usd=0.0, cost_p90_usd=0.0, feasible=False,
                           fits_budget=False, fits_deadline=False,
                           reason=expected if isinstance(expected, str) else str(slow))
    run_s = expected.wall_s + s.finish_s
    slow_s = slow.wall_s + s.slow_finish_s
    cost = billing.billed_seconds(run_s) / 3600.0 * hourly_usd
    p90 = max(cost, billing.billed_seconds(slow_s) / 3600.0 * hourly_usd)
    # Runs side by side on their own GPUs: each unit's share of the wall time.
    scale = expected.wall_s / (sum(u.total_s for u in expected.units) or 1.0)
    phases: dict[str, float] = {}
    by_stage: dict[str, float] = {}
    whats: dict[str, list[str]] = {}
    for u in expected.units:
        key = "setup" if u.first else "stage_starts"
        phases[key] = phases.get(key, 0.0) + u.fixed_s * scale
        for k, v in u.phases.items():
            phases[k] = phases.get(k, 0.0) + v * scale
        # As the report measures stages: until the first step is "prep" (the agent starting);
        # then each stage from the previous one's last step to its own last.
        if u.first:
            by_stage["prep"] = by_stage.get("prep", 0.0) + u.fixed_s * scale
        stage_s = (0.0 if u.first else u.fixed_s) + sum(u.phases.values())
        by_stage[u.stage] = by_stage.get(u.stage, 0.0) + stage_s * scale
        whats.setdefault(u.stage, []).append(u.what + ("" if u.first else
                                                       f", start {u.fixed_s:.1f} s"))
    phases["finish"] = s.finish_s
    last = expected.units[-1].stage
    by_stage[last] = by_stage.get(last, 0.0) + s.finish_s
    runs = len(works)
    rows, left = [], round(cost, 6)
    named = [st for st in ORDER if by_stage.get(st, 0.0) > 0]
    for i, st in enumerate(named):
        share = left if i == len(named) - 1 else round(cost * by_stage[st] / run_s, 6)
        left = round(left - share, 6)
        said = whats.get(st) or ["the agent's start"]
        what = said[0]
        if st == "eval" and len(said) > runs:
            what = f"{len(said) // runs} evaluations (before and after rl): {what}"
        if runs > 1:
            what = f"{runs} runs, each: {what}"
        rows.append({"stage": st, "hours": by_stage[st] / 3600.0, "cost_usd": share,
                     "what": what})
    decode_batches = sorted({d.batch for d in profile.decode})
    source = (f"{s.source}; decoding measured on this machine ({_n(len(profile.decode), 'run')}"
              f" at batch {', '.join(map(str, decode_batches))}{scaled}); stage starts measured "
              f"on this machine ({_n(len(profile.stages), 'stage')})")
    gpus, procs = expected.gpus_per_run, max(1, expected.gpus_per_run)  # no GPU: one process
    return QuoteOption(
        **base, hours=run_s / 3600.0, cost_usd=cost, cost_p90_usd=p90, feasible=True,
        fits_budget=cost <= request.budget_usd,
        fits_deadline=request.deadline_s is None or run_s <= request.deadline_s,
        phases={k: v / 3600.0 for k, v in phases.items()}, stages=rows,
        tokens_per_s=request.batch_size * request.seq_len / s.step_s, calibration=source,
        micro_batch=0, fits_cap_p90=p90 <= request.cap_usd, strategy="single",
        gpus_used=procs * min(runs, expected.slots), gpus_per_run=procs,
        waves=math.ceil(runs / expected.slots),
        runs=[{"name": n, "gpus": gpus, "hours": t / 3600.0, "gpu_hours": t * gpus / 3600.0}
              for n, t in expected.run_s.items()] if runs > 1 else [])


def _n(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"
