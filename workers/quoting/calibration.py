"""How the throughput model is adjusted for this team: its own measured runs first, then its
overrides in trainops.toml, then the model as published figures fit it (throughput.py).

Measured runs scale the model rather than replace it: each run is compared with what the model
predicts for that run's own shape (GPU, model size, method, sequence length, checkpointing), and
the ratio carries over to other shapes of the same GPU and method. A 7B LoRA run at seq 2048 then
informs a 7B LoRA quote at seq 512 through the model's account of short sequences, instead of
quoting 512-token micro-batches at the 2048-token rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schemas.config import ConfigError
from workers.quoting.catalog import GPUS
from workers.quoting.throughput import FLOPS_PER_PARAM, Setup, tokens_per_s_per_gpu
from workers.quoting.workload import MICRO_BATCH_TOKENS, shape_for_params

__all__ = ["FLOPS_PER_PARAM", "Adjustment", "Calibration", "Measured", "size_class"]


@dataclass(frozen=True)
class Measured:
    """Throughput of one kind of run we did ourselves: tokens/s per GPU, averaged over `runs`."""

    gpu: str
    method: str
    params_b: float
    tokens_per_s: float
    runs: int = 1
    gradient_checkpointing: bool = False
    seq_len: int = 2048
    gpu_count: int = 1
    micro_batch: int = 0  # sequences per micro-batch; 0: the agent's rule for a batch of 8


def size_class(params_b: float) -> str:
    """Model sizes that behave alike: small models are launch-bound, large ones matmul-bound."""
    for bound, name in ((3.0, "<3B"), (10.0, "3-10B"), (30.0, "10-30B")):
        if params_b < bound:
            return name
    return ">30B"


@dataclass(frozen=True)
class Adjustment:
    """What a quote applies on top of the model: a utilisation that replaces the model's (team
    override), a factor on its tokens/s (measured runs), and where that came from."""

    utilisation: float | None = None
    factor: float = 1.0
    source: str = "throughput model fit to published measurements"


def _predicted(rec: Measured) -> float:
    shape = shape_for_params(rec.params_b * 1e9)
    micro = rec.micro_batch or max(d for d in (1, 2, 4, 8)
                                   if d == 1 or d * rec.seq_len <= MICRO_BATCH_TOKENS)
    interconnect = "none" if rec.gpu_count <= 1 else "pcie"
    return tokens_per_s_per_gpu(Setup(
        gpu=rec.gpu, method=rec.method, params=shape.params, layers=shape.layers,
        hidden=shape.hidden, seq_len=rec.seq_len, micro_batch=micro,
        gradient_checkpointing=rec.gradient_checkpointing, n_gpus=rec.gpu_count,
        interconnect=interconnect, sharded=rec.method == "full" and rec.gpu_count > 1))


@dataclass(frozen=True)
class Calibration:
    overrides: Mapping[str, float] = field(default_factory=dict)  # "gpu/method" -> fraction
    # "gpu/method/size class" -> (measured / model, runs), the ratio a run-weighted geometric mean
    measured: Mapping[str, tuple[float, int]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, overrides: Mapping[str, float]) -> Calibration:
        """The team's `[calibration]` table; a key or value that can't be right is a ConfigError
        naming it, not a silent miss."""
        out = {}
        for key, value in overrides.items():
            gpu, _, method = key.lower().partition("/")
            if gpu not in GPUS or method not in FLOPS_PER_PARAM:
                raise ConfigError(f"calibration.{key}: use \"<gpu>/<method>\" with gpu one of "
                                  f"{', '.join(GPUS)} and method one of lora, qlora, full")
            if not 0 < float(value) <= 1:
                raise ConfigError(f"calibration.{key}: {value} is not a fraction of peak in (0, 1]")
            out[f"{gpu}/{method}"] = float(value)
        return cls(overrides=out)

    def with_measured(self, records: Iterable[Measured | tuple]) -> Calibration:
        """A copy that also knows these measured runs; several records of one GPU, method and
        size class are combined, weighted by their runs."""
        totals = {k: (math.log(r) * n, n) for k, (r, n) in self.measured.items()}
        for rec in records:
            rec = rec if isinstance(rec, Measured) else Measured(*rec)
            if (rec.gpu not in GPUS or rec.method not in FLOPS_PER_PARAM or rec.runs <= 0
                    or rec.tokens_per_s <= 0 or rec.params_b <= 0):
                continue
            ratio = rec.tokens_per_s / _predicted(rec)
            key = f"{rec.gpu}/{rec.method}/{size_class(rec.params_b)}"
            log_sum, n = totals.get(key, (0.0, 0))
            totals[key] = (log_sum + math.log(ratio) * rec.runs, n + rec.runs)
        measured = {k: (math.exp(s / n), n) for k, (s, n) in totals.items() if n > 0}
        return Calibration(overrides=self.overrides, measured=measured)

    def adjustment(self, gpu: str, method: str, params_b: float) -> Adjustment:
        """Measured runs of this GPU, method and size class win; then runs of the same GPU and
        method at other sizes; then the team's override; then the model as fit."""
        exact = f"{gpu}/{method}/{size_class(params_b)}"
        if exact in self.measured:
            ratio, runs = self.measured[exact]
            return Adjustment(factor=ratio,
                              source=f"measured ({runs} run{'s' if runs != 1 else ''})")
        near = [(k, v) for k, v in self.measured.items() if k.startswith(f"{gpu}/{method}/")]
        if near:
            runs = sum(n for _, (_, n) in near)
            ratio = math.exp(sum(math.log(r) * n for _, (r, n) in near) / runs)
            return Adjustment(factor=ratio, source=f"measured ({runs} run{'s' if runs != 1 else ''}"
                                                   ", other sizes)")
        key = f"{gpu}/{method}"
        if key in self.overrides:
            return Adjustment(utilisation=self.overrides[key], source="team config (trainops.toml)")
        return Adjustment()

    def utilisation(self, gpu: str, method: str) -> tuple[float, str]:
        """A one-number summary per GPU and method, for display and older callers: the matrix
        utilisation a 7B model gets, after measured runs or the team's override. Quotes use
        `adjustment`, which keeps the model's account of size and sequence length."""
        from workers.quoting.throughput import matmul_utilisation

        shape = shape_for_params(7e9)
        model = matmul_utilisation(Setup(gpu=gpu, method=method, params=shape.params,
                                         layers=shape.layers, hidden=shape.hidden, seq_len=2048))
        near = [(r, n) for k, (r, n) in self.measured.items() if k.startswith(f"{gpu}/{method}/")]
        if near:
            runs = sum(n for _, n in near)
            ratio = math.exp(sum(math.log(r) * n for r, n in near) / runs)
            return model * ratio, f"measured ({runs} run{'s' if runs != 1 else ''})"
        if f"{gpu}/{method}" in self.overrides:
            return self.overrides[f"{gpu}/{method}"], "team config (trainops.toml)"
        return model, Adjustment().source
