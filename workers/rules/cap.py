"""The spend guard (pure): given what a running job has spent and what it costs per hour, decide
whether to warn, stop or terminate, and when the agent must stop on its own.

Two layers hold the cap (docs/budget-and-cap.md):

1. The monitor, every tick, decides from metered spend: warn at `warn` × cap (or earlier when the
   projected final cost is over the cap), ask the agent to stop (checkpoint first) once the next
   tick would cross the cap, and terminate the machine if it is still up two minutes after.
2. The agent holds a deadline, the moment the money runs out at the current price, written into
   control.json every tick. It powers the machine off at the deadline by itself, so the cap holds
   while the bot, the workers and Redis are all down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

# How long a stop request may take before the machine is terminated regardless (a checkpoint
# upload plus shutdown; AWS gives a spot machine the same two minutes).
STOP_GRACE = timedelta(minutes=2)
# Reserved before the money runs out so the agent's last checkpoint and power-off fit inside the
# cap: what remains at the deadline pays for this long at the current price.
DEADLINE_RESERVE = timedelta(seconds=60)


class Action(StrEnum):
    WARN = "warn"  # post the warning with its buttons (once per cap)
    STOP = "stop"  # set stop in control.json: checkpoint, then exit
    TERMINATE = "terminate"  # the stop took too long: terminate the machine now


@dataclass(frozen=True)
class Meter:
    """A running job as the guard sees it at one tick."""

    now: datetime
    spent_usd: Decimal
    cap_usd: Decimal
    warn_fraction: Decimal
    usd_per_hour: Decimal  # the price in force now
    tick_s: float  # the monitor's interval
    projected_final_usd: Decimal | None = None  # spend at the current rate until the ETA
    warned_at_cap: Decimal | None = None  # the cap the last warning was for, if any
    stop_requested_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)


def decide(m: Meter) -> Decision:
    actions: list[Action] = []
    reasons: list[str] = []
    warn_at = m.cap_usd * m.warn_fraction
    already_warned = m.warned_at_cap is not None and m.warned_at_cap >= m.cap_usd
    if not already_warned:
        if m.spent_usd >= warn_at:
            actions.append(Action.WARN)
            reasons.append(f"spent ${m.spent_usd:.2f} of the ${m.cap_usd:.2f} cap "
                           f"({_pct(m.spent_usd, m.cap_usd)}), warning at {_pct(warn_at, m.cap_usd)}")
        elif m.projected_final_usd is not None and m.projected_final_usd > m.cap_usd:
            actions.append(Action.WARN)
            reasons.append(f"projected final cost ${m.projected_final_usd:.2f} is over the "
                           f"${m.cap_usd:.2f} cap")

    if m.stop_requested_at is None:
        # Stop now if waiting for the next tick would cross the cap: the agent's checkpoint and
        # exit then happen while money is left, and the overshoot stays within one tick.
        next_tick = m.spent_usd + m.usd_per_hour * Decimal(str(m.tick_s)) / Decimal(3600)
        if next_tick >= m.cap_usd:
            actions.append(Action.STOP)
            reasons.append(f"spent ${m.spent_usd:.2f}; the cap ${m.cap_usd:.2f} is reached "
                           f"before the next check")
    elif m.now - m.stop_requested_at >= STOP_GRACE:
        actions.append(Action.TERMINATE)
        reasons.append(f"asked to stop at {m.stop_requested_at:%H:%M:%S}; still running after "
                       f"{int(STOP_GRACE.total_seconds())} s")
    return Decision(tuple(actions), tuple(reasons))


def deadline(
    now: datetime, spent_usd: Decimal, cap_usd: Decimal, usd_per_hour: Decimal,
    *, paid_until: datetime | None = None, reserve: timedelta = DEADLINE_RESERVE,
) -> datetime | None:
    """When the money runs out at the current price, less the reserve for the final checkpoint.

    None when the machine costs nothing (a team's own box at price 0: no money deadline). A job
    already at or over its cap gets `now`: stop at once. `paid_until`: the metered spend already
    covers the machine until then (the 60 s minimum per start is billed up front), so the money
    left only starts running out from there.
    """
    if usd_per_hour <= 0:
        return None
    remaining = cap_usd - spent_usd
    if remaining <= 0:
        return now
    seconds = float(remaining / usd_per_hour * Decimal(3600))
    start = max(now, paid_until) if paid_until is not None else now
    return max(now, start + timedelta(seconds=seconds) - reserve)


def projected_final(spent_usd: Decimal, usd_per_hour: Decimal, eta_s: float | None) -> Decimal | None:
    """Spend at the end of the run if the current price holds until the agent's ETA."""
    if eta_s is None:
        return None
    return spent_usd + usd_per_hour * Decimal(str(max(0.0, eta_s))) / Decimal(3600)


def _pct(part: Decimal, whole: Decimal) -> str:
    return f"{(part / whole * 100):.0f}%" if whole else "n/a"
