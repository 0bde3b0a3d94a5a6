"""The approval policy, table-driven: who may approve what."""

from __future__ import annotations

from decimal import Decimal

import pytest

from workers.rules.budget import OPERATOR, rule_on_approval

D = Decimal
APPROVERS = frozenset({"UBOSS", "UREQ2"})

# decision, actor, requester, cheapest spot, cheapest on-demand -> allowed, allowance, cap
CASES = [
    ("approve", "UREQ", "UREQ", D(40), D(90), True, D(100), D(100)),  # within budget: requester
    ("approve", "UBOSS", "UREQ", D(40), D(90), True, D(100), D(100)),  # or an approver
    ("approve", "USTRANGER", "UREQ", D(40), D(90), False, None, None),  # not a bystander
    ("approve", "UREQ", "UREQ", D(130), None, False, None, None),  # over: not the requester
    ("approve", "UBOSS", "UREQ", D(130), None, True, D(130), D(130)),  # over: approver, cap up
    ("approve", "UREQ2", "UREQ2", D(130), None, False, None, None),  # never their own overrun
    ("approve", OPERATOR, "cli:me", D(130), None, True, D(130), D(130)),  # --yes is an approver
    ("approve", "UBOSS", "UREQ", None, None, False, None, None),  # nothing feasible
    ("approve_on_demand", "UREQ", "UREQ", D(40), D(90), True, D(100), D(100)),
    ("approve_on_demand", "UREQ", "UREQ", D(40), D(120), False, None, None),  # on-demand overrun
    ("approve_on_demand", "UBOSS", "UREQ", D(40), D(120), True, D(120), D(120)),
    ("approve_on_demand", "UBOSS", "UREQ", D(40), None, False, None, None),  # no on-demand option
    ("reject", "UREQ", "UREQ", D(130), None, True, None, None),
    ("reject", "UBOSS", "UREQ", D(130), None, True, None, None),
    ("reject", "USTRANGER", "UREQ", D(40), None, False, None, None),
]


@pytest.mark.parametrize("decision,actor,requester,spot,od,allowed,allowance,cap", CASES)
def test_approval_policy(decision, actor, requester, spot, od, allowed, allowance, cap):
    ruling = rule_on_approval(decision=decision, actor=actor, requester=requester,
                              approvers=APPROVERS, budget_usd=D(100), cap_usd=D(100),
                              cheapest_feasible_usd=spot, cheapest_on_demand_usd=od)
    assert ruling.allowed is allowed, ruling.message
    assert ruling.message and "\n" not in ruling.message
    if allowed and decision != "reject":
        assert ruling.allowance_usd == allowance
        assert ruling.cap_usd == cap
        assert ruling.on_demand_ok is (decision == "approve_on_demand")


def test_a_higher_cap_is_never_lowered_by_an_overrun_approval():
    ruling = rule_on_approval(decision="approve", actor="UBOSS", requester="UREQ",
                              approvers=APPROVERS, budget_usd=D(100), cap_usd=D(150),
                              cheapest_feasible_usd=D(120))
    assert ruling.allowed and ruling.cap_usd == D(150) and ruling.allowance_usd == D(120)
