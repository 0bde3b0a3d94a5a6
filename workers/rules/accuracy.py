"""How far a run's metered cost was from the quote it was approved on, and why (pure).

The difference between the metered spend and the approved option's expected cost is split into
the parts a team can act on, in this order, so the parts add up to the difference exactly:

- price: each attempt's billed hours at its recorded price minus the same hours at the quoted one;
- setup: the first attempt's launch-to-first-step time against the quoted setup, at the quoted
  price;
- throughput: the seconds spent training, over every attempt, against the quoted training time;
- interruptions: what attempts after the first cost apart from their training (their setup,
  their restore), plus the save on each interruption, against the restarts the quote expected;
- other: what is left (the finish, the 60 s minimum per start, disk).

`summary` gives the median and the worst |error| over finished runs (`trainops accuracy`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from schemas.spec import QuoteOption

CENT = Decimal("0.01")
PARTS = ("price", "setup", "throughput", "interruptions", "other")


@dataclass(frozen=True)
class Planned:
    label: str  # "local (this machine)", "g5.xlarge spot"
    hourly_usd: Decimal
    expected_usd: Decimal
    p90_usd: Decimal
    setup_s: float
    train_s: float
    interruptions_s: float


@dataclass(frozen=True)
class Ran:
    """One attempt as it ran: its price, its billed seconds, and from its metrics log the
    seconds before its first step and the seconds it trained (None when no log came back)."""

    hourly_usd: Decimal
    billed_s: float
    setup_s: float | None
    train_s: float | None
    interrupted: bool = False


def planned_from(option: QuoteOption) -> Planned:
    p = {k: v * 3600.0 for k, v in option.phases.items()}
    label = ("local (this machine)" if option.market == "local"
             else f"{option.instance_type} {option.market}")
    return Planned(
        label=label, hourly_usd=Decimal(str(option.hourly_usd)),
        expected_usd=Decimal(str(option.cost_usd)), p90_usd=Decimal(str(option.cost_p90_usd)),
        setup_s=p.get("setup", 0.0) + p.get("data", 0.0),
        # Everything between the first step and the last: a pipeline's generation, scoring,
        # policy updates, evaluations and later stages' starts run there too.
        train_s=sum(p.get(k, 0.0) for k in ("train", "checkpoints", "generation", "reward",
                                            "policy_update", "eval", "stage_starts")),
        interruptions_s=p.get("interruptions", 0.0))


def _usd(seconds: float, hourly: Decimal) -> Decimal:
    return Decimal(str(seconds)) * hourly / Decimal(3600)


def differences(planned: Planned, ran: Sequence[Ran], spent_usd: Decimal) -> dict[str, Decimal]:
    """The parts of (spent - expected), in dollars, summing to it exactly (before rounding)."""
    total = spent_usd - planned.expected_usd
    p = planned.hourly_usd
    out = {k: Decimal(0) for k in PARTS}
    out["price"] = sum((_usd(r.billed_s, r.hourly_usd - p) for r in ran), Decimal(0))
    if ran and ran[0].setup_s is not None:
        out["setup"] = _usd(ran[0].setup_s - planned.setup_s, p)
    trained = [r.train_s for r in ran if r.train_s is not None]
    if trained:
        out["throughput"] = _usd(sum(trained) - planned.train_s, p)
    extra = 0.0
    for i, r in enumerate(ran):
        if i > 0:  # a restart: all it billed but its training
            extra += max(0.0, r.billed_s - (r.train_s or 0.0))
        if r.interrupted and r.setup_s is not None and r.train_s is not None:
            extra += max(0.0, r.billed_s - r.setup_s - r.train_s)  # the save on the notice
    out["interruptions"] = _usd(extra - planned.interruptions_s, p)
    out["other"] = total - sum(out.values(), Decimal(0))
    return out


def explain(diffs: dict[str, Decimal]) -> str:
    """"price +$0.00 · setup +$0.02 · ..." (every part, so a zero is seen to be zero)."""
    def money(x: Decimal) -> str:
        x = x.quantize(CENT)
        return f"{'-' if x < 0 else '+'}${abs(x)}"

    return " · ".join(f"{k} {money(diffs[k])}" for k in PARTS)


def error_pct(spent_usd: Decimal, expected_usd: Decimal) -> float | None:
    if expected_usd <= 0:
        return None
    return float((spent_usd - expected_usd) / expected_usd * 100)


@dataclass(frozen=True)
class Accuracy:
    runs: int
    median_abs_pct: float
    worst_job: str
    worst_pct: float
    within_15: int  # runs whose |error| is at most 15%

    def line(self) -> str:
        sign = "+" if self.worst_pct >= 0 else ""
        return (f"quote accuracy: median |error| {self.median_abs_pct:.0f}% over "
                f"{self.runs} finished run{'s' if self.runs != 1 else ''} "
                f"({self.within_15} within ±15%); worst {self.worst_job} "
                f"{sign}{self.worst_pct:.0f}%")


def summary(errors: Sequence[tuple[str, float]]) -> Accuracy | None:
    """Median and worst |error| of (job id, error %) pairs; None when there are none."""
    if not errors:
        return None
    worst = max(errors, key=lambda e: abs(e[1]))
    return Accuracy(runs=len(errors),
                    median_abs_pct=statistics.median(abs(e) for _, e in errors),
                    worst_job=worst[0], worst_pct=worst[1],
                    within_15=sum(1 for _, e in errors if abs(e) <= 15))
