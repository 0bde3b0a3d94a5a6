"""The shared language: what a person asks for, what a quote says, what the agent is told to run,
and what the agent reports back.

No database, Celery or torch import here: the training agent on the GPU machine uses these models
too, and so does the bot, which must start fast.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Stage = Literal["sft"]
Peft = Literal["lora", "qlora", "none"]
Method = Literal["lora", "qlora", "full"]
Precision = Literal["bf16", "fp16", "fp32"]
SpotChoice = Literal["yes", "no", "auto"]
Market = Literal["spot", "on-demand"]
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


class Quote(_Model):
    request: TrainRequest
    workload: Workload
    options: list[QuoteOption]
    recommended: QuoteOption | None
    over_budget_usd: float = 0.0
    reduced_cost_usd: float | None = None  # what the `reduced` preset would cost, when over
    notes: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)


class JobSpec(_Model):
    """What the training agent on the GPU machine is told to run (`spec.json`).

    `store_uri` is the job's folder in the object store (`.../jobs/<job_id>`); everything the
    agent writes goes under it.
    """

    job_id: str
    attempt: int = 1
    store_uri: str
    model: str
    data: str = "demo"
    method: Method = "lora"
    precision: Precision = "bf16"
    seq_len: int = Field(default=2048, gt=0)
    batch_size: int = Field(default=8, gt=0)  # sequences per optimizer step
    micro_batch_size: int = Field(default=0, ge=0)  # 0: the agent chooses
    max_samples: int | None = Field(default=None, gt=0)
    epochs: int = Field(default=1, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    learning_rate: float = Field(default=2e-4, gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    lora_r: int = Field(default=16, gt=0)
    lora_alpha: int = Field(default=32, gt=0)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    gradient_checkpointing: bool = False
    compile: bool = False
    seed: int = 1234
    checkpoint_every_steps: int = Field(default=50, gt=0)
    checkpoint_every_s: float = Field(default=600, gt=0)
    keep_checkpoints: int = Field(default=3, gt=0)
    heartbeat_s: float = Field(default=15, gt=0)  # progress.json at least this often (<= 30 s)
    notice_poll_s: float = Field(default=5, gt=0)  # IMDS spot-notice polling
    command: str | None = None  # the user's own script instead of the recipe
    grace_s: float = Field(default=60, gt=0)  # custom command: SIGTERM to SIGKILL
    # `/train resume`: the store URI of the job this one continues (`.../jobs/<old id>`). When
    # this job's own checkpoints/ holds none yet, the agent first copies that job's newest
    # verified checkpoint here. Not a training field: it changes where training starts, not
    # what is trained.
    resume_from: str | None = None

    # Fields that change what a checkpoint means. Resuming from a checkpoint written under
    # another value of any of these would silently train something else, so the agent refuses.
    TRAINING_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "data", "method", "precision", "seq_len", "batch_size", "max_samples",
        "epochs", "max_steps", "learning_rate", "warmup_steps", "lora_r", "lora_alpha",
        "lora_dropout", "seed", "command",
    )

    def spec_hash(self) -> str:
        payload = {name: getattr(self, name) for name in self.TRAINING_FIELDS}
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class Progress(_Model):
    """`progress.json`: the agent's heartbeat, written at least every 30 s."""

    phase: str  # setup | data | train | checkpoint | save | done
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    tokens_per_s: float = 0.0
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    last_checkpoint_step: int | None = None
    upload_error: str | None = None  # the last checkpoint upload that keeps failing, if any
    attempt: int = 1
    updated_at: datetime = Field(default_factory=utcnow)


AgentState = Literal["succeeded", "failed", "interrupted", "stopped", "deadline"]


class AgentStatus(_Model):
    """`status.json`: the agent's last word about an attempt."""

    state: AgentState
    attempt: int = 1
    step: int = 0
    last_checkpoint_step: int | None = None
    final_loss: float | None = None
    error: str | None = None  # the tail of the error when failed
    output_uri: str | None = None  # where the trained adapter or model is
    at: datetime = Field(default_factory=utcnow)


class Control(_Model):
    """`control.json`: what the control plane tells a running agent.

    `deadline` is the moment the money runs out at the current price; the agent enforces it by
    itself, so the cap holds while the bot, the workers and Redis are down.
    """

    stop: bool = False
    # Rehearse a spot interruption (`trainops interrupt JOB`, local provider): the agent takes the
    # very path an IMDS notice takes — checkpoint now, upload, status interrupted, exit.
    interrupt: bool = False
    deadline: datetime | None = None
    cap_usd: float | None = None
    updated_at: datetime = Field(default_factory=utcnow)
