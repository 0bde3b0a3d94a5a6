"""Who may approve what, and the budget arithmetic behind it. Pure: values in, values out.

Approval policy (docs/budget-and-cap.md):
- within budget: the requester or an approver may approve;
- over budget: only an approver, and never the requester alone for their own job;
- `operator` (the person at the terminal running `trainops train --yes`, who holds this
  machine's credentials) counts as an approver;
- the requester or an approver may reject;
- the money at risk is the CAP (the agent stops there, not at the budget): a non-approver may
  approve their own job only while its cap is within the team's self-approval limit;
- a job that runs code a person supplied (`command=`, a reward file) needs an approver's click,
  every time, whatever it costs (`needs_approver_for_code`).

An approved overrun sets the job's allowance to what the approver saw (the cheapest feasible
option's expected cost) and raises the cap to at least that much: approving a run that the cap
would stop halfway would waste the money already spent.

Money over time (metering, the deadline) lives in workers/rules/billing.py and workers/rules/cap.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Decision = Literal["approve", "approve_on_demand", "reject"]
OPERATOR = "operator"
CENT = Decimal("0.01")


def usd(value: float | int | str | Decimal) -> Decimal:
    """A dollar amount as an exact Decimal (str() first, so 0.1 stays 0.1)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def fmt_usd(value: Decimal | float) -> str:
    return f"${usd(value).quantize(CENT, rounding=ROUND_HALF_UP):,}"


@dataclass(frozen=True)
class ApprovalRuling:
    allowed: bool
    message: str  # one line for the person who clicked, or for the thread
    as_approver: bool = False
    over_budget: bool = False
    allowance_usd: Decimal | None = None  # most the launch plan may expect to spend
    cap_usd: Decimal | None = None  # the cap after this decision
    on_demand_ok: bool = False


def needs_approver_for_code(request) -> str | None:
    """Why `request` runs code a person supplied, or None. Such code runs on a machine that can
    write to the job's store and sees whatever the machine sees, so only an approver may let it
    run, even within budget. One rule for every kind of user code (`command=`, a reward file)."""
    code = user_code(getattr(request, "command", None), getattr(request, "reward", None))
    return f"it runs your own code ({'; '.join(code)[:200]})" if code else None


def rule_on_approval(
    *,
    decision: Decision,
    actor: str,
    requester: str,
    approvers: frozenset[str],
    budget_usd: Decimal,
    cap_usd: Decimal,
    cheapest_feasible_usd: Decimal | None,
    cheapest_on_demand_usd: Decimal | None = None,
    custom_code: str | None = None,
    self_approve_limit_usd: Decimal | None = None,
) -> ApprovalRuling:
    """Whether `actor` may make `decision` on a job quoted at `cheapest_feasible_usd`.

    `cheapest_on_demand_usd` is the cheapest feasible on-demand option, which
    `approve_on_demand` is judged against (on-demand costs more, so it can be an overrun when
    spot is not)."""
    is_approver = actor == OPERATOR or actor in approvers
    is_requester = actor == requester
    if decision == "reject":
        if is_requester or is_approver:
            return ApprovalRuling(True, f"rejected by {actor}", as_approver=is_approver)
        return ApprovalRuling(False, "only the requester or an approver may reject this job")

    if custom_code and not is_approver:
        return ApprovalRuling(False, f"only an approver may approve this job: {custom_code}, "
                                     "even within budget")
    if (self_approve_limit_usd is not None and not is_approver and is_requester
            and cap_usd > self_approve_limit_usd):
        return ApprovalRuling(False, f"its cap of {fmt_usd(cap_usd)} is over the self-approval "
                                     f"limit of {fmt_usd(self_approve_limit_usd)}: an approver "
                                     "must approve it")
    on_demand = decision == "approve_on_demand"
    expected = cheapest_on_demand_usd if on_demand else cheapest_feasible_usd
    if expected is None:
        what = "no feasible on-demand option" if on_demand else "no feasible option"
        return ApprovalRuling(False, f"cannot approve: {what} in the quote; try a smaller preset "
                                     "or another instance")
    over = expected > budget_usd
    if not over:
        if is_requester or is_approver:
            return ApprovalRuling(
                True, f"approved by {actor} within the budget of {fmt_usd(budget_usd)}",
                as_approver=is_approver, allowance_usd=budget_usd, cap_usd=cap_usd,
                on_demand_ok=on_demand,
            )
        return ApprovalRuling(False, "only the requester or an approver may approve this job")
    if not is_approver:
        return ApprovalRuling(False, f"this run is expected to cost {fmt_usd(expected)}, over the "
                                     f"budget of {fmt_usd(budget_usd)}: an approver must approve it")
    if is_requester:
        return ApprovalRuling(False, "an overrun needs an approver other than the requester")
    new_cap = max(cap_usd, expected)
    raised = f"; cap raised to {fmt_usd(new_cap)}" if new_cap > cap_usd else ""
    return ApprovalRuling(
        True, f"overrun approved by {actor}: expected {fmt_usd(expected)} against a budget of "
              f"{fmt_usd(budget_usd)}{raised}",
        as_approver=True, over_budget=True, allowance_usd=expected, cap_usd=new_cap,
        on_demand_ok=on_demand,
    )


# -- User code (issue #12; `command=` and reward files) -----------------------------------------
# A request that carries the user's own code (a training command, a reward function file) runs
# that code on a GPU machine with the job's credentials: an approver must look at it and click,
# even within budget. `needs_approver_for_code` above is the one rule that asks.

def user_code(command: str | None, reward: str | None) -> list[str]:
    """The user code a request carries, as it will run (shown verbatim in the quote)."""
    from workers.quoting.rewards import is_user_reward

    out = []
    if command:
        out.append(f"command={command}")
    if is_user_reward(reward):
        out.append(f"reward={reward}")
    return out
