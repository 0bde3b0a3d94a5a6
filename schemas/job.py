"""What the agent on the GPU machine is told and what it says back: `spec.json` (JobSpec, with
its sweep runs), `progress.json` (Progress), `status.json` (AgentStatus) and `control.json`
(Control). Shipped in the agent's bundle; no database import. The request and the quote that
lead to a job are in schemas/spec.py."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from schemas.spec import Method, Precision, RlMethod, Strategy, _Model, utcnow


class SweepRun(_Model):
    """One run of a sweep: its name (a folder name) and the spec fields it changes."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.=+-]{0,63}$")
    overrides: dict[str, float | int] = Field(default_factory=dict)

    # Fields a sweep may vary: they change what is trained, not the machine or the data layout.
    SWEEPABLE: ClassVar[tuple[str, ...]] = (
        "learning_rate", "lora_r", "lora_alpha", "lora_dropout", "seed", "epochs", "max_steps",
        "warmup_steps",
    )

    @field_validator("overrides")
    @classmethod
    def _sweepable(cls, value: dict[str, float | int]) -> dict[str, float | int]:
        wrong = sorted(set(value) - set(cls.SWEEPABLE))
        if wrong:
            raise ValueError(f"cannot sweep {', '.join(wrong)}; sweepable: {', '.join(cls.SWEEPABLE)}")
        return value


class RunProgress(_Model):
    """One run of a sweep in progress.json: enough for one line of the progress card."""

    name: str
    stage: str = "sft"
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    state: str = "queued"  # queued | running | succeeded | failed | interrupted | stopped | deadline


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
    # security (issue #14): where data= may be read (trainops.toml [data]; None: a spec from
    # before the rule, not checked here), whether this is an EC2 instance (only then is the
    # metadata service polled for spot notices), and whether training may start only once
    # control.json holds a money deadline (the control plane always sets it).
    data_local_roots: list[str] | None = None
    data_s3_prefixes: list[str] | None = None
    on_ec2: bool = False
    require_deadline: bool = False
    # Per-job store credentials (schemas/credentials.py): the agent writes its job's files with
    # the credentials the control plane hands this machine, never with the machine's own role.
    job_credentials: bool = False

    # -- Multi-GPU, sweeps and stages (issue #11: use every GPU the quote pays for) ------------
    # How the recipe spreads over the machine's GPUs; None: single when one process, ddp for
    # lora/qlora, fsdp for full. The quote sets fsdp for LoRA on a base that does not fit one GPU.
    strategy: Strategy | None = None
    # Processes (GPUs) per machine; None: every GPU torch sees (1 on a CPU machine).
    nproc_per_node: int | None = Field(default=None, gt=0)
    # A sweep: one experiment per entry, each its own checkpoints and final (runs/<name>/...).
    runs: list[SweepRun] = Field(default_factory=list)
    # The recipes run in order, each resuming from its own checkpoints (training/recipes).
    stages: list[str] = Field(default_factory=lambda: ["sft"], min_length=1)
    # Progress that moves (issue 13): progress.json is written when the step or the phase
    # changes, at most this often; heartbeat_s stays the longest it goes unwritten.
    progress_every_s: float = Field(default=5, gt=0)

    # Fields that change what a checkpoint means. Resuming from a checkpoint written under
    # another value of any of these would silently train something else, so the agent refuses.
    TRAINING_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "data", "method", "precision", "seq_len", "batch_size", "max_samples",
        "epochs", "max_steps", "learning_rate", "warmup_steps", "lora_r", "lora_alpha",
        "lora_dropout", "seed", "command", "runs", "stages",
    )

    def spec_hash(self) -> str:
        payload = {name: getattr(self, name) for name in self.TRAINING_FIELDS}
        # A job with one run and the sft stage hashes as it did before sweeps and stages existed.
        if not self.runs:
            payload.pop("runs")
        if self.stages == ["sft"]:
            payload.pop("stages")
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # -- RL and eval (stages): the prep, rl and eval recipes (training/recipes/{prep,rl,eval}.py).
    # In rl, batch_size counts tasks (prompts) per optimizer step; each gets n_samples completions.
    rl_method: RlMethod = "grpo"
    reward: str = "exact"  # training/recipes/rewards.py: built-ins, or path/to/file.py:function
    n_samples: int = Field(default=4, ge=2)  # completions per task (GRPO's num_generations)
    top_k: int = Field(default=1, gt=0)  # best_of_n: completions kept per task, by reward
    rounds: int = Field(default=1, gt=0)  # best_of_n: generate-select-fine-tune rounds
    num_tasks: int | None = Field(default=None, gt=0)  # tasks (rows) rl samples from; None: all
    max_new_tokens: int = Field(default=32, gt=0)  # longest completion rl and eval generate
    temperature: float = Field(default=1.0, gt=0)  # sampling temperature for rl generations
    kl_beta: float = Field(default=0.0, ge=0)  # GRPO: KL penalty against the starting policy
    init_from: str | None = None  # adapter or model (local path, file:// or s3://) to start from
    eval_samples: int = Field(default=0, ge=0)  # rows held out of training for the eval stage
    TRAINING_FIELDS: ClassVar[tuple[str, ...]] = TRAINING_FIELDS + (
        "rl_method", "reward", "n_samples", "top_k", "rounds", "num_tasks", "max_new_tokens",
        "temperature", "kl_beta", "init_from", "eval_samples",
    )


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
    # Stages and sweeps (issues #11, #12): the stage running now, and one entry per run of a
    # sweep (empty for a job with one run).
    stage: str | None = None  # prep | sft | rl | eval
    runs: list[RunProgress] = Field(default_factory=list)


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
    # Several stages: the stage `step` and `final_loss` belong to (a pipeline's model stage,
    # rl's rather than the eval's after it). None: the one stage, or an agent before this field.
    stage: str | None = None


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
    # security (issue #14): the money left as a DURATION, seconds from this write. The agent
    # counts it down on its own monotonic clock from when it read this document, so a machine
    # whose clock is slow (or fast) cannot move the moment it stops; `deadline` stays for
    # people and for agents of before this field.
    seconds_left: float | None = None
