"""What a job runs beyond one SFT run (issues #11, #12): the runs of a sweep, the RL and eval
stages, and the time breakdown a quote shows per stage. Pure.

The run names are the agent's (JobSpec.runs) and the report's: `learning_rate=0.0001`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.config import TeamConfig
from schemas.spec import TrainRequest
from workers.quoting.catalog import Instance, hbm_gbs, link_gbs
from workers.quoting.generation import (
    Decoder,
    RlWork,
    generate_seconds,
    reward_seconds,
    rl_work_of,
)
from workers.quoting.rewards import is_user_reward
from workers.quoting.strategy import Plan, memory_for
from workers.quoting.workload import FROZEN_BYTES, Work, work_of

INT_SWEEPS = ("lora_r", "seed", "epochs")


def sweep_runs(request: TrainRequest) -> list[tuple[str, dict]]:
    """(name, overrides) of each run; one unnamed run ("main") when there is no sweep."""
    if not request.sweep_key:
        return [("main", {})]
    key = request.sweep_key
    out = []
    for v in request.sweep_values:
        value = int(v) if key in INT_SWEEPS else float(v)
        out.append((f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}",
                    {key: value}))
    return out


def stages_of(request: TrainRequest) -> list[str]:
    return list(request.stages) or {"pipeline": ["prep", "sft", "rl", "eval"]}.get(
        request.stage, [request.stage])


@dataclass(frozen=True)
class JobWork:
    runs: list[tuple[str, dict]]
    run_tokens: list[float]  # SFT tokens of each run (0 when the job has no SFT stage)
    stages: list[str]
    rl: RlWork
    plans: dict = field(default_factory=dict)  # (instance, ...) -> Plan, within one estimate


def job_work(request: TrainRequest, config: TeamConfig, work: Work) -> JobWork:
    stages = stages_of(request)
    runs = sweep_runs(request)
    tokens = []
    for _, overrides in runs:
        if "sft" not in stages:
            tokens.append(0.0)
        elif "epochs" in overrides:
            tokens.append(work_of(request.model_copy(update=overrides), config).tokens)
        else:
            tokens.append(work.tokens)
    return JobWork(runs, tokens, stages, rl_work_of(request, stages, is_user_reward(request.reward)))


def rl_seconds(job: JobWork, work: Work, inst: Instance, plan: Plan, factor: float) -> dict:
    """Seconds of generation, reward scoring, policy updates and evaluation on this plan's GPUs."""
    rl = job.rl
    if not rl.rl_sequences and not rl.eval_sequences:
        return {}
    lay = plan.layout
    gather = 0.0
    if lay.strategy == "fsdp":  # each decode step gathers the weights it does not hold
        gather = work.shape.params * 2.0 * (lay.gpus - 1) / lay.gpus / (link_gbs(inst) * 1e9)
    weight_bytes = 2.0 if work.method == "qlora" else FROZEN_BYTES[work.precision]
    if lay.strategy == "fsdp":
        weight_bytes /= lay.gpus
    decoder = Decoder(params=work.shape.params, layers=work.shape.layers,
                      hidden=work.shape.hidden, kv_width=work.shape.kv, weight_bytes=weight_bytes, hbm_gbs=hbm_gbs(inst),
                      peak_tflops=inst.gpu_info.peak_tflops,
                      # generation frees the training activations; the state stays
                      free_gb=max(0.5, inst.gpu_memory_gb - memory_for(
                          work, lay.gpus, lay.strategy, lay.checkpointing, 0).per_gpu_gb),
                      gather_s=gather)
    out = {}
    if rl.rl_sequences:
        out["generation"] = generate_seconds(decoder, rl.rl_sequences, rl.prompt_tokens,
                                             rl.completion_tokens, lay.gpus)
        out["reward"] = reward_seconds(rl, rl.rl_sequences)
        out["policy_update"] = rl.update_tokens / (lay.tokens_per_s * factor)
    if rl.eval_sequences:
        out["eval"] = generate_seconds(decoder, rl.eval_sequences, rl.prompt_tokens,
                                       rl.completion_tokens, lay.gpus) \
            + reward_seconds(rl, rl.eval_sequences)
    return out


# Which phase belongs to which stage of the breakdown table.
STAGE_OF_PHASE = {"setup": "prep", "data": "prep", "train": "sft", "checkpoints": "sft",
                  "final_save": "sft", "generation": "rl", "reward": "rl", "policy_update": "rl",
                  "eval": "eval", "buffer": "buffer", "interruptions": "interruptions",
                  "capacity_wait": "interruptions"}
ORDER = ("prep", "sft", "rl", "eval", "buffer", "interruptions")


def _what(stage: str, job: JobWork, work: Work, plan: Plan, request: TrainRequest) -> str:
    rl = job.rl
    if stage == "prep":
        return "boot, model download, data preparation"
    if stage == "sft":
        runs = len(job.runs)
        each = f"{runs} runs, {plan.waves} wave{'s' if plan.waves > 1 else ''}, " if runs > 1 \
            else ""
        return f"{each}{sum(job.run_tokens):,.0f} tokens, checkpoints and final save"
    if stage == "rl":
        return (f"{request.rl_method}: {rl.rl_sequences:,} completions sampled, "
                f"{rl.update_sequences:,} trained on")
    if stage == "eval":
        when = " (before and after RL)" if rl.evaluations == 2 else ""
        return f"{rl.eval_sequences // max(1, rl.evaluations):,} prompts × {rl.evaluations}{when}"
    if stage == "buffer":
        return "10% for what nobody planned"
    return "expected spot restarts and waits"


def stage_rows(seconds: dict[str, float], cost_usd: float, job: JobWork, work: Work,
               plan: Plan, request: TrainRequest) -> list[dict]:
    """The time breakdown: each stage's hours and its share of the expected cost (the shares
    add up to the option's cost exactly; spot restarts are their own row)."""
    hours: dict[str, float] = {}
    for phase, s in seconds.items():
        stage = STAGE_OF_PHASE.get(phase, "buffer")
        if stage == "sft" and "sft" not in job.stages:
            stage = "rl" if "rl" in job.stages else "prep"  # the final save of an rl/eval job
        hours[stage] = hours.get(stage, 0.0) + s / 3600.0
    total = sum(hours.values()) or 1.0
    rows, left = [], round(cost_usd, 6)
    named = [st for st in ORDER if hours.get(st, 0.0) > 0]
    for i, st in enumerate(named):
        share = left if i == len(named) - 1 else round(cost_usd * hours[st] / total, 6)
        left = round(left - share, 6)
        rows.append({"stage": st, "hours": hours[st], "cost_usd": share,
                     "what": _what(st, job, work, plan, request)})
    return rows
