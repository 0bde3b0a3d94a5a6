"""The launch plan (pure): which option and zone to try next, or why to give up.

Order (issue 3): the approved quote's options in the order the approver saw them (cheapest
expected cost first); within an option, its own cheapest zone first, then the others. An option
is allowed when it is feasible, its market is allowed (on-demand only with `approve_on_demand`),
and its expected cost is within the approval's allowance. Only named errors move the plan on:
- a capacity error in a zone skips that type+market+zone;
- "instance_type" scope skips the type in that market everywhere;
- "market" scope (MaxSpotInstanceCountExceeded) and quota errors skip the whole market for that
  family of instances.
Anything else is not the plan's business: the caller fails the job with cause `setup`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from schemas.spec import QuoteOption
from schemas.status import FailureCause
from workers.providers.quotas import family_group
from workers.rules.budget import fmt_usd, usd


@dataclass(frozen=True)
class Try:
    rank: int  # index of the option in the quote
    instance_type: str
    market: str
    zone: str | None
    hourly_usd: float
    cost_usd: float


@dataclass(frozen=True)
class Failure:
    instance_type: str
    market: str
    zone: str | None
    code: str
    scope: str  # zone | instance_type | market | quota


@dataclass(frozen=True)
class GiveUp:
    cause: FailureCause
    message: str


def _blocked(t: Try, failures: Sequence[Failure]) -> bool:
    for f in failures:
        if f.market != t.market:
            continue
        if f.scope == "zone" and (f.instance_type, f.zone) == (t.instance_type, t.zone):
            return True
        if f.scope == "instance_type" and f.instance_type == t.instance_type:
            return True
        if f.scope in ("market", "quota") and (
            family_group(f.instance_type) == family_group(t.instance_type)
        ):
            return True
    return False


def allowed_options(options: Sequence[QuoteOption], *, on_demand_ok: bool,
                    allowance_usd: Decimal | None) -> tuple[list[tuple[int, QuoteOption]], list[str]]:
    """The options the approval allows, with their quote rank, and why each other was left out."""
    allowed, left_out = [], []
    for rank, o in enumerate(options):
        name = f"{o.instance_type} {o.market}"
        if not o.feasible:
            left_out.append(f"{name}: not feasible ({o.reason or 'see the quote'})")
        elif o.market == "on-demand" and not on_demand_ok:
            left_out.append(f"{name}: on-demand was not approved")
        elif allowance_usd is not None and usd(o.cost_usd) > usd(allowance_usd):
            left_out.append(f"{name}: expected {fmt_usd(o.cost_usd)} is over the approved "
                            f"{fmt_usd(allowance_usd)}")
        else:
            allowed.append((rank, o))
    return allowed, left_out


def tries(options: Sequence[QuoteOption], zones: Sequence[str | None], *, on_demand_ok: bool,
          allowance_usd: Decimal | None) -> list[Try]:
    """Every (option, zone) the approval allows, in the order they should be tried."""
    out = []
    for rank, o in allowed_options(options, on_demand_ok=on_demand_ok,
                                   allowance_usd=allowance_usd)[0]:
        ordered = [o.zone] if o.zone else []
        ordered += [z for z in zones if z != o.zone and not (z is None and o.zone)]
        for zone in ordered or [None]:
            out.append(Try(rank, o.instance_type, o.market, zone, o.hourly_usd, o.cost_usd))
    return out


def next_try(options: Sequence[QuoteOption], zones: Sequence[str | None], *, on_demand_ok: bool,
             allowance_usd: Decimal | None, failures: Sequence[Failure] = ()) -> Try | GiveUp:
    plan = tries(options, zones, on_demand_ok=on_demand_ok, allowance_usd=allowance_usd)
    if not plan:
        _, left_out = allowed_options(options, on_demand_ok=on_demand_ok,
                                      allowance_usd=allowance_usd)
        return GiveUp(FailureCause.precheck, "no option the approval allows: "
                      + ("; ".join(left_out) or "the quote has no options"))
    for t in plan:
        if not _blocked(t, failures):
            return t
    seen = "; ".join(f"{f.instance_type} {f.market} {f.zone or 'any zone'}: {f.code}"
                     for f in failures)
    only_quota = failures and all(f.scope == "quota" for f in failures)
    cause = FailureCause.quota if only_quota else FailureCause.no_capacity
    return GiveUp(cause, f"every allowed option and zone was tried ({seen})")
