"""What the thread shows about a running job (pure): the progress card and the spend warning.

The monitor builds these values every tick; notifiers render them (workers/notify.py for the
console, bot/slack/notifier.py for Slack blocks). Nothing here talks to anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

FULL, EMPTY = "▓", "░"


def bar(fraction: float, width: int = 20) -> str:
    """A text bar `▓▓▓▓░░░░` filled to `fraction` (clamped to 0..1)."""
    if width <= 0:
        return ""
    f = 0.0 if fraction is None or math.isnan(fraction) else min(1.0, max(0.0, fraction))
    filled = int(round(f * width))
    return FULL * filled + EMPTY * (width - filled)


def money(x: Decimal | None) -> str:
    return "n/a" if x is None else f"${x:,.2f}"


def duration(seconds: float | None) -> str:
    """`1h 05m`, `4m 10s`, `12s`; `n/a` when unknown."""
    if seconds is None or seconds < 0 or math.isnan(seconds):
        return "n/a"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def default_extend_by(cap_usd: Decimal) -> Decimal:
    """The warning's "Extend cap by $X": 25% of the cap rounded up to whole dollars (at least $1)."""
    return max(Decimal(1), (cap_usd * Decimal("0.25")).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class RunLine:
    """One run of a sweep on the progress card (from progress.json's `runs`)."""

    name: str
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    state: str = "queued"
    stage: str | None = None

    @classmethod
    def of(cls, run) -> RunLine:
        """From a progress.json run (a dict, or the agent's model of one)."""
        get = run.get if isinstance(run, dict) else (lambda k, d=None: getattr(run, k, d))
        return cls(name=str(get("name", "?")), step=int(get("step", 0) or 0),
                   total_steps=int(get("total_steps", 0) or 0), loss=get("loss"),
                   state=str(get("state", "queued") or "queued"), stage=get("stage"))

    def line(self) -> str:
        loss = "n/a" if self.loss is None else f"{self.loss:.4f}"
        fraction = self.step / self.total_steps if self.total_steps > 0 else 0.0
        stage = f" {self.stage}" if self.stage and self.stage != "sft" else ""
        return (f"  {self.name}{stage}: {self.state} · step {self.step}/{self.total_steps} "
                f"{bar(fraction, 10)} · loss {loss}")


@dataclass(frozen=True)
class ProgressCard:
    """One running job at one tick: the message updated in place in its thread."""

    job_id: str
    step: int
    total_steps: int
    loss: float | None
    tokens_per_s: float
    eta_s: float | None
    spent_usd: Decimal
    cap_usd: Decimal
    warn_usd: Decimal
    projected_final_usd: Decimal | None
    instance_type: str | None
    market: str | None
    attempt: int
    phase: str
    updated_at: datetime
    # -- Stages and sweeps (issues #11, #12) --------------------------------------------------
    stage: str | None = None  # prep | sft | rl | eval
    runs: tuple[RunLine, ...] = ()  # every run of a sweep

    @property
    def step_fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps > 0 else 0.0

    @property
    def spend_fraction(self) -> float:
        return float(self.spent_usd / self.cap_usd) if self.cap_usd > 0 else 0.0

    def bar(self, width: int = 20) -> str:
        """The spend against the cap as a text bar (the money is what this card is about)."""
        return bar(self.spend_fraction, width)

    def lines(self) -> list[str]:
        """The card as plain lines (console, Slack fallback text, tests)."""
        machine = " ".join(x for x in (self.instance_type, self.market) if x) or "machine"
        loss = "n/a" if self.loss is None else f"{self.loss:.4f}"
        stage = f"stage {self.stage} · " if self.stage else ""
        out = [
            f"{self.job_id} · {stage}{self.phase} · attempt {self.attempt} on {machine}",
            f"step {self.step}/{self.total_steps} ({self.step_fraction:.0%}) "
            f"{bar(self.step_fraction, 10)} · loss {loss} · {self.tokens_per_s:,.0f} tokens/s "
            f"· ETA {duration(self.eta_s)}",
            f"spend {money(self.spent_usd)} of {money(self.cap_usd)} cap {self.bar()} "
            f"{self.spend_fraction:.0%} (warning at {money(self.warn_usd)})",
        ]
        out[2:2] = [r.line() for r in self.runs]
        if self.projected_final_usd is not None:
            over = " — over the cap" if self.projected_final_usd > self.cap_usd else ""
            out.append(f"projected final cost {money(self.projected_final_usd)}{over}")
        out.append(f"updated {self.updated_at:%H:%M:%S} UTC")
        return out


@dataclass(frozen=True)
class WarningCard:
    """The spend warning: who to mention, what was spent, why now, and the extension offered."""

    job_id: str
    requester: str
    spent_usd: Decimal
    cap_usd: Decimal
    projected_final_usd: Decimal | None
    reason: str
    extend_by_usd: Decimal | None = None  # None: default_extend_by(cap_usd)

    def __post_init__(self):
        if self.extend_by_usd is None:
            object.__setattr__(self, "extend_by_usd", default_extend_by(self.cap_usd))

    def lines(self) -> list[str]:
        out = [
            f"<@{self.requester}> {self.job_id} has spent {money(self.spent_usd)} of its "
            f"{money(self.cap_usd)} cap ({self.reason}).",
        ]
        if self.projected_final_usd is not None:
            out.append(f"Projected final cost: {money(self.projected_final_usd)}.")
        out.append(f"Extend the cap by {money(self.extend_by_usd)} (approvers), stop now "
                   f"(checkpoint, then terminate), or let it run to the cap.")
        return out
