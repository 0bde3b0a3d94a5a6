"""The shared language: what a person asks for, what a quote says, what the agent is told to run,
and what the agent reports back.

No database, Celery or torch import here: the training agent on the GPU machine uses these models
too, and so does the bot, which must start fast.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Stage = Literal["sft", "rl", "eval", "pipeline"]
Strategy = Literal["single", "ddp", "fsdp"]
RlMethod = Literal["grpo", "best_of_n"]
Peft = Literal["lora", "qlora", "none"]
Method = Literal["lora", "qlora", "full"]
Precision = Literal["bf16", "fp16", "fp32"]
SpotChoice = Literal["yes", "no", "auto"]
Market = Literal["spot", "on-demand", "local"]  # local: the worker's own machine
PriceSource = Literal["live", "catalog", "local"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    # Unknown fields are a mistake in a spec or a payload, not something to carry silently.
    model_config = ConfigDict(extra="forbid", frozen=False)


class TrainRequest(_Model):
    """A parsed `/train` command with the preset and the team defaults applied.

    Everything a quote or a job needs to know about what was asked; the text it came from is kept
    so a person can see it again in the thread.
    """

    text: str = ""
    stage: Stage = "sft"
    preset: str = "full"
    budget_usd: float = Field(gt=0)
    cap_usd: float = Field(gt=0)
    warn: float = Field(default=0.8, gt=0, le=1)
    model: str
    # Parameter count in billions when `model` is a bare size (`7B`) or known from the model table.
    params_b: float | None = None
    data: str = "demo"
    samples: int | None = Field(default=None, gt=0)
    seq_len: int = Field(default=2048, gt=0)
    epochs: int = Field(default=1, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    batch_size: int = Field(default=8, gt=0)  # sequences per optimizer step, across all GPUs
    peft: Peft = "lora"
    precision: Precision = "bf16"
    gpu: str | None = None
    instance: str | None = None
    spot: SpotChoice = "auto"
    region: str = "us-east-1"
    deadline_s: int | None = Field(default=None, gt=0)
    command: str | None = None  # the user's own training script instead of the recipe
    # -- Sweeps, stages and RL (issues #11, #12) --------------------------------------------
    # `sweep=learning_rate:1e-4,2e-4`: one key, its values; each value is one run of the job.
    sweep_key: str | None = None
    sweep_values: list[float] = Field(default_factory=list)
    # The stages the job runs, in order (prep, sft, rl, eval); empty: what `stage` stands for.
    stages: list[str] = Field(default_factory=list)
    init_from: str | None = None  # a job id or s3://.../final/: the weights RL or eval start from
    rl_method: RlMethod = "grpo"
    n_samples: int | None = Field(default=None, gt=0)  # completions per task per round
    top_k: int | None = Field(default=None, gt=0)  # best_of_n: completions kept per task
    num_tasks: int | None = Field(default=None, gt=0)  # prompts per round
    rounds: int | None = Field(default=None, gt=0)
    reward: str | None = None  # exact | regex:... | json | length | path/file.py:fn
    eval_samples: int | None = Field(default=None, gt=0)

    @property
    def method(self) -> Method:
        return "full" if self.peft == "none" else self.peft


class Workload(_Model):
    """How much work the request is, independent of where it runs."""

    params: float  # parameters of the base model
    tokens: float  # tokens processed over the whole run
    steps: int
    method: Method
    flops: float  # total training FLOPs, recomputation and attention included
    flops_per_token: float
    gradient_checkpointing: bool = False
    memory_gb: float = 0.0  # GPU memory the method needs before sharding


class QuoteOption(_Model):
    """One instance type in one market, priced for this workload."""

    instance_type: str
    gpu: str
    gpu_count: int
    gpu_memory_gb: float
    market: Market
    region: str
    zone: str | None = None  # the cheapest zone for spot, when a live price named one
    hourly_usd: float
    price_source: PriceSource
    price_age_s: float  # seconds since the price was read (catalog: since the snapshot)
    hours: float  # expected wall-clock hours billed, phases and spot risk included
    cost_usd: float  # expected cost
    cost_p90_usd: float  # cost with the 90th-percentile number of interruptions
    feasible: bool
    fits_budget: bool
    reason: str | None = None  # why not feasible, or null
    phases: dict[str, float] = Field(default_factory=dict)  # phase name -> hours
    tokens_per_s: float = 0.0  # expected throughput of the whole instance
    calibration: str = ""  # where the utilisation figure came from
    interruption_bucket: str | None = None  # spot only: the advisor's bucket, e.g. "<5%"
    fits_deadline: bool = True  # expected hours within the request's deadline (or no deadline)
    gradient_checkpointing: bool = False  # needed to fit this option's GPU memory
    memory_gb: float = 0.0  # GPU memory needed per GPU (GB)
    micro_batch: int = 0  # sequences per micro-batch on each GPU the throughput assumes
    price_basis: str = ""  # which price: "catalog zone median ...", "cheapest zone now"
    # Spot risk (spot only): interruptions per running hour and where that figure comes from,
    # the expected number of restarts, the 90th percentile of it, and the chance of any.
    interruptions_per_h: float = 0.0
    interruption_source: str = ""
    expected_restarts: float = 0.0
    restarts_p90: int = 0
    interruption_chance: float = 0.0
    fits_cap_p90: bool = True  # the P90 cost stays within the request's cap
    # -- Multi-GPU, sweeps and stages (issues #11, #12) ----------------------------------------
    strategy: Strategy = "single"  # how each run uses its GPUs: one, replicated, or sharded
    gpus_used: int = 1  # GPUs busy at once (all runs of a wave together)
    gpus_per_run: int = 1
    scaling: float = 1.0  # per-GPU throughput on gpus_per_run GPUs relative to one GPU
    waves: int = 1  # a sweep with more runs than GPU groups runs in waves
    runs: list[dict] = Field(default_factory=list)  # sweep: {name, gpus, hours, gpu_hours}
    stages: list[dict] = Field(default_factory=list)  # {stage, hours, cost_usd, what}


class Quote(_Model):
    request: TrainRequest
    workload: Workload
    options: list[QuoteOption]
    recommended: QuoteOption | None
    over_budget_usd: float = 0.0
    reduced_cost_usd: float | None = None  # what the `reduced` preset would cost, when over
    notes: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
