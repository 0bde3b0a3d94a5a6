"""The launch plan, table-driven: fallbacks only on named errors, in the approved order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.status import FailureCause
from tests.support.factories import option
from workers.rules.launch_order import Failure, GiveUp, next_try, tries

OPTIONS = [
    option("g5.xlarge", "spot", 4.0, 0.40, "us-east-1a"),
    option("g6.xlarge", "spot", 5.0, 0.42, "us-east-1b"),
    option("g5.xlarge", "on-demand", 10.0, 1.006, None),
    option("p3.2xlarge", "spot", 3.0, 0.40, "us-east-1a", feasible=False),
]
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def _f(t, m, z, code="InsufficientInstanceCapacity", scope="zone"):
    return Failure(t, m, z, code, scope)


# failures so far, on-demand allowed, allowance -> next (type, market, zone) or a cause
CASES = [
    ([], False, Decimal(100), ("g5.xlarge", "spot", "us-east-1a")),
    ([_f("g5.xlarge", "spot", "us-east-1a")], False, Decimal(100),
     ("g5.xlarge", "spot", "us-east-1b")),  # next zone first
    ([_f("g5.xlarge", "spot", z) for z in ZONES], False, Decimal(100),
     ("g6.xlarge", "spot", "us-east-1b")),  # then the next option, its own zone first
    ([_f("g5.xlarge", "spot", "us-east-1a", "Unsupported", "instance_type")], False,
     Decimal(100), ("g6.xlarge", "spot", "us-east-1b")),
    ([_f("g5.xlarge", "spot", "us-east-1a", "MaxSpotInstanceCountExceeded", "market")], True,
     Decimal(100), ("g5.xlarge", "on-demand", "us-east-1a")),  # spot out: on-demand if allowed
    ([_f("g5.xlarge", "spot", "us-east-1a", "MaxSpotInstanceCountExceeded", "market")], False,
     Decimal(100), FailureCause.no_capacity),  # ... and not otherwise
    ([_f("g5.xlarge", "spot", "us-east-1a", "QuotaPrecheck", "quota")], False, Decimal(100),
     FailureCause.quota),
    ([], False, Decimal("4.5"), ("g5.xlarge", "spot", "us-east-1a")),
    ([_f("g5.xlarge", "spot", z) for z in ZONES], False, Decimal("4.5"),
     FailureCause.no_capacity),  # the next option costs more than was approved
    ([], False, Decimal(2), FailureCause.precheck),  # nothing within the allowance at all
]


@pytest.mark.parametrize("failures,on_demand,allowance,expected", CASES)
def test_next_try(failures, on_demand, allowance, expected):
    got = next_try(OPTIONS, ZONES, on_demand_ok=on_demand, allowance_usd=allowance,
                   failures=failures)
    if isinstance(expected, FailureCause):
        assert isinstance(got, GiveUp) and got.cause == expected, got
        assert got.message
    else:
        assert (got.instance_type, got.market, got.zone) == expected


def test_the_plan_never_contains_an_infeasible_option_or_a_duplicate():
    plan = tries(OPTIONS, ZONES, on_demand_ok=True, allowance_usd=None)
    assert all(t.instance_type != "p3.2xlarge" for t in plan)
    keys = [(t.instance_type, t.market, t.zone) for t in plan]
    assert len(keys) == len(set(keys)) == 9


def test_provider_chosen_zone_when_no_zones_are_configured():
    plan = tries(OPTIONS, [None], on_demand_ok=True, allowance_usd=None)
    assert [(t.instance_type, t.zone) for t in plan] == [
        ("g5.xlarge", "us-east-1a"), ("g6.xlarge", "us-east-1b"), ("g5.xlarge", None)]
