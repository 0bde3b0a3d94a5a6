"""Utilisation: what fraction of a GPU's peak a fine-tuning run really achieves.

Three layers, the most trustworthy winning: measured throughput from our own runs, then the team's
overrides in trainops.toml (`[calibration] "a10g/lora" = 0.3`), then published figures
(FACTS.md). Every figure carries where it came from, and the quote shows it.

Utilisation here is counted the way the estimator counts FLOPs (6·N per token for full
fine-tuning, 4·N for LoRA and QLoRA): "31%" means 4·N·tokens_per_s / peak = 0.31.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schemas.config import ConfigError
from workers.quoting.catalog import GPUS

# Published utilisation per method on an A100, the stack we run (HF + PEFT + FlashAttention-2).
_BASE: dict[str, tuple[float, str]] = {
    # Qwen-7B LoRA on one A100: 3,151 tok/s at seq 2048 = 31% MFU with 4·N accounting.
    "lora": (0.31, "Qwen-7B LoRA on A100, HF+PEFT+FA2 (31% MFU)"),
    # QLoRA runs at 0.74-0.78× LoRA speed (Qwen, torchtune): 0.31 × 0.76.
    "qlora": (0.31 * 0.76, "QLoRA at 0.76× LoRA (Qwen, torchtune)"),
    # Tuned stacks reach 46-64% (llm-foundry); MPT-7B on 8×H100 is ~43% by 6·N accounting. HF
    # Trainer with FSDP is not a tuned stack: take the bottom of the range, less a margin.
    "full": (0.40, "full fine-tuning below llm-foundry's 46-64% MFU"),
}

# How each GPU family fares against the A100 figure, and why.
_FAMILY: dict[str, tuple[float, str]] = {
    "a100": (1.0, "measured on A100"),
    # MPT-7B on H100 is ~43% against 46-64% elsewhere: the faster the GPU, the more the
    # non-matmul work shows.
    "h100": (0.85, "H100 fills less well (llm-foundry MPT-7B)"),
    # Ada/Ampere inference cards: the peak is what limits; no published shortfall.
    "a10g": (1.0, "A10G peak itself is an estimate"),
    "l4": (0.9, "L4 is power-limited at 72 W"),
    "l40s": (0.9, "L40S assumed like L4"),
    # Older cards without FlashAttention-2 support (Turing, Volta): attention runs unfused.
    "t4": (0.7, "no FlashAttention-2 on Turing"),
    "v100": (0.7, "no FlashAttention-2 on Volta"),
}

# The FLOPs per token per parameter that utilisation figures are counted against.
FLOPS_PER_PARAM = {"full": 6.0, "lora": 4.0, "qlora": 4.0}


@dataclass(frozen=True)
class Measured:
    """Throughput of one kind of run we did ourselves: tokens/s per GPU, averaged over `runs`."""

    gpu: str
    method: str
    params_b: float
    tokens_per_s: float
    runs: int = 1
    # Whether those runs recomputed activations: their FLOPs per token were then one forward more,
    # and utilisation is counted against the FLOPs really done.
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class Calibration:
    overrides: Mapping[str, float] = field(default_factory=dict)  # "gpu/method" -> fraction
    measured: Mapping[str, tuple[float, int]] = field(default_factory=dict)  # key -> (util, runs)

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
        """A copy that also knows these measured runs; several records of one gpu/method are
        averaged, weighted by their runs."""
        sums: dict[str, tuple[float, int]] = dict(self.measured)
        totals = {k: (u * n, n) for k, (u, n) in sums.items()}
        for rec in records:
            rec = rec if isinstance(rec, Measured) else Measured(*rec)
            if rec.gpu not in GPUS or rec.method not in FLOPS_PER_PARAM or rec.runs <= 0:
                continue
            per_param = FLOPS_PER_PARAM[rec.method] + (2.0 if rec.gradient_checkpointing else 0.0)
            util = rec.tokens_per_s * per_param * rec.params_b * 1e9 / (
                GPUS[rec.gpu].peak_tflops * 1e12)
            key = f"{rec.gpu}/{rec.method}"
            weighted, n = totals.get(key, (0.0, 0))
            totals[key] = (weighted + util * rec.runs, n + rec.runs)
        measured = {k: (w / n, n) for k, (w, n) in totals.items() if n > 0}
        return Calibration(overrides=self.overrides, measured=measured)

    def utilisation(self, gpu: str, method: str) -> tuple[float, str]:
        """(fraction of peak, where it came from) for this GPU family and method."""
        key = f"{gpu}/{method}"
        if key in self.measured:
            util, runs = self.measured[key]
            return util, f"measured ({runs} run{'s' if runs != 1 else ''})"
        if key in self.overrides:
            return self.overrides[key], "team config (trainops.toml)"
        base, base_source = _BASE[method]
        factor, family_source = _FAMILY.get(gpu, (0.8, "unknown family"))
        if factor == 1.0:
            return base, base_source
        return base * factor, f"{base_source}; {family_source}"
