"""What to do after a spot interruption (pure).

Users of other tools complain that a preempted job came back in the zone it had just lost, or
restarted from scratch, or kept relaunching forever. The rules here:

* Relaunch from the last verified checkpoint, first on the same instance type in a zone not yet
  lost, then on the next options of the approved quote, in the order the approver saw.
* On-demand only when the approval allowed it.
* Only while the money left under the cap covers the remaining work on that option (the quote's
  cost for the option scaled to the work left, plus the restart's fixed cost). Otherwise ask the
  people in the thread whether to continue elsewhere or stop.
* A job interrupted `max_recoveries` times ends with a clear notice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal


@dataclass(frozen=True)
class Candidate:
    """An option of the approved quote, as recovery needs it."""

    instance_type: str
    market: Literal["spot", "on-demand"]
    run_cost_usd: Decimal  # the quote's expected cost of the whole run on this option
    restart_usd: Decimal  # provisioning + setup + checkpoint restore on this option


@dataclass(frozen=True)
class Recovery:
    kind: Literal["relaunch", "ask", "give_up"]
    reason: str
    candidate: Candidate | None = None
    avoid_zones: frozenset[str] = frozenset()
    estimate_usd: Decimal | None = None


def decide_recovery(
    *,
    candidates: Sequence[Candidate],
    lost_type: str,
    lost_zones: frozenset[str],
    zones_by_type: dict[str, Sequence[str]],
    remaining_fraction: Decimal,
    remaining_budget_usd: Decimal,
    recoveries_so_far: int,
    max_recoveries: int,
    allow_on_demand: bool,
) -> Recovery:
    if recoveries_so_far >= max_recoveries:
        return Recovery("give_up", f"interrupted {recoveries_so_far} times; the limit is "
                                   f"{max_recoveries} recoveries (max_recoveries in trainops.toml)")

    ordered = [c for c in candidates if c.instance_type == lost_type] + [
        c for c in candidates if c.instance_type != lost_type
    ]
    too_dear: list[str] = []
    for cand in ordered:
        if cand.market == "on-demand" and not allow_on_demand:
            continue
        avoid = lost_zones if cand.instance_type == lost_type else frozenset()
        zones = [z for z in zones_by_type.get(cand.instance_type, ()) if z not in avoid]
        if cand.market == "spot" and zones_by_type.get(cand.instance_type) and not zones:
            continue  # every zone of this type has already been lost
        estimate = remaining_fraction * cand.run_cost_usd + cand.restart_usd
        if estimate > remaining_budget_usd:
            too_dear.append(f"{cand.instance_type} {cand.market} ${estimate:.2f}")
            continue
        where = f" avoiding {', '.join(sorted(avoid))}" if avoid else ""
        return Recovery(
            "relaunch",
            f"relaunch on {cand.instance_type} ({cand.market}){where}: about ${estimate:.2f} "
            f"for the {remaining_fraction * 100:.0f}% of the work left, "
            f"${remaining_budget_usd:.2f} left under the cap",
            cand, avoid, estimate,
        )
    if too_dear:
        return Recovery("ask", f"${remaining_budget_usd:.2f} left under the cap covers no option "
                               f"for the work left ({'; '.join(too_dear[:3])})")
    return Recovery("ask", "no approved option is left to relaunch on"
                           + ("" if allow_on_demand else " (on-demand was not approved)"))
