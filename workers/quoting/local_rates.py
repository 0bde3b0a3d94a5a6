"""This machine's rates for a pipeline's quote (issue 13), read from its profile: the expected
figure is the median of the measurements, the P90 the slowest (with one measurement, a margin
more). Pure. workers/quoting/local_stages.py adds the units up with them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from schemas.config import TeamConfig
from schemas.spec import TrainRequest
from workers.quoting.local_profile import DecodeMeasurement, LocalProfile
from workers.quoting.workload import shape_of


@dataclass(frozen=True)
class Rates:
    """One set of the machine's rates: the median (expected) or the slowest (P90)."""

    step_s: float  # an sft step of this request's shape
    flops_per_s: float  # training FLOP rate (rl's updates, eval's reference forwards)
    decode: list[tuple[int, float]]  # (batch, seconds per token asked for), by batch
    fixed: dict[tuple[str, bool], float]  # (stage, first unit) -> fixed seconds
    factors: dict[str, float] = field(default_factory=dict)  # rl, eval: measured / modelled step

    def factor(self, stage: str) -> float:
        return self.factors.get(stage, 1.0)

    def decode_s(self, batch: int) -> float:
        """Seconds per token asked of `batch` sequences decoding: a straight line between measured
        batch sizes, continued past the largest (one measured size: in proportion to the
        batch), the smallest's figure below it."""
        pts = self.decode
        if batch <= pts[0][0]:
            return pts[0][1]
        if len(pts) == 1:
            return pts[0][1] * batch / pts[0][0]
        for (b0, s0), (b1, s1) in zip(pts, pts[1:], strict=False):
            if batch <= b1:
                return s0 + (s1 - s0) * (batch - b0) / (b1 - b0)
        (b0, s0), (b1, s1) = pts[-2], pts[-1]
        return s1 + max(0.0, (s1 - s0) / (b1 - b0)) * (batch - b1)

    def fixed_s(self, stage: str, first: bool) -> float | None:
        if (stage, first) in self.fixed:
            return self.fixed[(stage, first)]
        alike = [v for (_, f), v in self.fixed.items() if f == first]  # another stage's start
        return max(alike) if alike else None


def _pick(values: list[float], slow: bool, margin: float) -> float:
    if slow:
        return max(values) * (margin if len(values) < 2 else 1.0)
    return statistics.median(values)


def rates(profile: LocalProfile, step_s: float, slow_step_s: float, slow: bool,
          margin: float, decode_scale: float = 1.0) -> Rates:
    """The expected (median) or P90 (slowest measured; with one measurement, `margin` more).
    `decode_scale`: another model than the one decoding was measured on (decode_scale_of)."""
    rate = [m.flops_per_s for m in profile.measurements]
    flops = min(rate) / (margin if len(rate) < 2 else 1.0) if slow else statistics.median(rate)
    by_batch: dict[int, list[DecodeMeasurement]] = {}
    for d in profile.decode:
        by_batch.setdefault(d.batch, []).append(d)
    decode = [(b, _pick([d.step_s for d in ds], slow, margin) * decode_scale)
              for b, ds in sorted(by_batch.items())]
    groups: dict[tuple[str, bool], list[float]] = {}
    for s in profile.stages:
        groups.setdefault((s.stage, s.first), []).append(s.fixed_s)
    if ("sft", True) not in groups and profile.measurements:
        # An SFT run's setup is the agent starting and the sft stage loading: sft first.
        groups[("sft", True)] = [m.setup_s for m in profile.measurements]
    fixed = {k: _pick(v, slow, margin) for k, v in groups.items()}
    factors = {st: _pick(v, slow, margin) for st in ("rl", "eval")
               if (v := [m.factor for m in profile.stages if m.stage == st and m.factor])}
    return Rates(slow_step_s if slow else step_s, flops, decode, fixed, factors)


def decode_scale_of(request: TrainRequest, config: TeamConfig, profile: LocalProfile
                    ) -> tuple[float, str]:
    """Decoding is measured on the built-in tiny model: another model's decode step is taken
    to cost more in proportion to its parameters (its work per token), as another SFT shape
    is scaled by its FLOPs. Rough across very different sizes; the source says so."""
    measured = {d.model for d in profile.decode}
    if not measured or request.model in measured:
        return 1.0, ""
    model = sorted(measured)[0]
    ratio = shape_of(request, config).params / shape_of(
        request.model_copy(update={"model": model}), config).params
    return max(1.0, ratio), f", scaled from {model} by parameters"
