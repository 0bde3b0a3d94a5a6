"""What this machine measured about itself (issue 13): `local/profile.json` in the store.

Three kinds of measurement, each list keeping the newest few, because the newest say what this
machine does now:

- `measurements`: SFT training (seconds per step of a shape, setup, finish), from the
  calibration's SFT run and from finished SFT jobs;
- `decode`: generation as the rl and eval recipes generate (training/recipes/policy.sample):
  seconds for a batch of prompts to decode so many tokens, from the calibration;
- `stages`: a stage's fixed cost, what a stage takes besides its work (its child process
  starting, the model loading, the previous stage's final save), from the calibration's
  pipeline run and from finished local pipelines.

Every list has a default, so a profile.json written before a kind existed still loads (the
missing kind reads "not measured yet", and the next `ensure_profile` measures it).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.spec import utcnow

PROFILE_KEY = "local/profile.json"
KEEP = 10  # measurements kept of each kind
# With one measurement there is no spread to read a P90 from: this margin on the time stands in.
SINGLE_MEASUREMENT_P90 = 0.25


class Measurement(BaseModel):
    """One SFT run on this machine: its shape and what it took."""

    model_config = ConfigDict(extra="forbid")

    at: datetime = Field(default_factory=utcnow)
    source: str  # "calibration" or "job j-..."
    model: str
    method: str
    precision: str
    seq_len: int
    batch_size: int
    flops_per_token: float  # of this shape, as the quote counts them (workload.py)
    step_s: float  # seconds per optimizer step while training (checkpoint pauses included)
    setup_s: float  # launch (or agent start) to the start of the first training step
    finish_s: float  # end of the last step to the end of billing
    through_monitor: bool = False  # finish_s includes the monitor noticing the end

    @property
    def tokens_per_s(self) -> float:
        return self.batch_size * self.seq_len / self.step_s

    @property
    def flops_per_s(self) -> float:
        return self.tokens_per_s * self.flops_per_token


class DecodeMeasurement(BaseModel):
    """`batch` sequences generating together, asked for `new_tokens` tokens each, took `seconds`
    (prefill included) and ran `steps` decode steps (the batch stops when every sequence has
    ended). The figure a quote uses is seconds per token asked for: a model that stops early,
    as the calibration's does once its sft stage taught it short answers, takes less."""

    model_config = ConfigDict(extra="forbid")

    at: datetime = Field(default_factory=utcnow)
    source: str
    model: str
    batch: int
    steps: int
    seconds: float
    new_tokens: int = 0  # asked for; 0 in a profile from before it was kept: `steps`

    @property
    def step_s(self) -> float:
        return self.seconds / (self.new_tokens or self.steps)


class StageMeasurement(BaseModel):
    """A stage's fixed cost on this machine: its wall time (from the previous stage's last step,
    or from the agent's start for the first stage) less its work at the measured rates."""

    model_config = ConfigDict(extra="forbid")

    at: datetime = Field(default_factory=utcnow)
    source: str
    stage: str  # prep | sft | rl | eval
    first: bool  # the job's first stage: the agent's own start is in it
    fixed_s: float
    wall_s: float  # what it took in all, for the record
    # rl and eval: its measured seconds per step over what decoding, scoring and the update
    # FLOPs at the measured rates account for (TRL's own work, the optimizer, tokenising);
    # None when the stage logged one step, which gives no step time.
    factor: float | None = None


class LocalProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gpus: int = 0
    gpu: str = "cpu"  # "cpu" or the GPU's family ("h100") or its name when the catalog lacks it
    detected: str = ""  # how gpus/gpu were found: "torch.cuda", "trainops.toml"
    measurements: list[Measurement] = Field(default_factory=list)
    decode: list[DecodeMeasurement] = Field(default_factory=list)
    stages: list[StageMeasurement] = Field(default_factory=list)

    def add(self, m: Measurement) -> LocalProfile:
        return self.model_copy(update={"measurements": [*self.measurements, m][-KEEP:]})

    def add_decode(self, ms: list[DecodeMeasurement]) -> LocalProfile:
        # One calibration measures two or three batch sizes: keep enough for a few calibrations.
        return self.model_copy(update={"decode": [*self.decode, *ms][-3 * KEEP:]})

    def add_stages(self, ms: list[StageMeasurement]) -> LocalProfile:
        # A pipeline has four or five stages: keep the newest few pipelines' worth.
        return self.model_copy(update={"stages": [*self.stages, *ms][-5 * KEEP:]})

    @property
    def label(self) -> str:
        return "CPU only" if self.gpus == 0 else f"{self.gpus}×{self.gpu}"

    @property
    def measures_stages(self) -> bool:
        return bool(self.measurements and self.decode and self.stages)


def read_profile(store) -> LocalProfile | None:
    from schemas.store import read_model

    try:
        return read_model(store, PROFILE_KEY, LocalProfile)
    except Exception:  # noqa: BLE001 - an unreadable profile means "not measured", not a crash
        return None


def write_profile(store, profile: LocalProfile) -> None:
    from schemas.store import write_model

    write_model(store, PROFILE_KEY, profile)
