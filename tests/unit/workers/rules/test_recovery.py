"""Recovery decisions after a spot interruption, as a table."""

from decimal import Decimal as D

from workers.rules.recovery import Candidate, decide_recovery

G5 = Candidate("g5.xlarge", "spot", D("10"), D("0.50"))
G6 = Candidate("g6.xlarge", "spot", D("12"), D("0.50"))
G5_OD = Candidate("g5.xlarge", "on-demand", D("25"), D("1.00"))
ZONES = {"g5.xlarge": ["us-east-1a", "us-east-1b"], "g6.xlarge": ["us-east-1a"]}


def decide(**kw):
    base = dict(candidates=[G5, G6, G5_OD], lost_type="g5.xlarge",
                lost_zones=frozenset({"us-east-1a"}), zones_by_type=ZONES,
                remaining_fraction=D("0.5"), remaining_budget_usd=D("20"),
                recoveries_so_far=0, max_recoveries=5, allow_on_demand=False)
    base.update(kw)
    return decide_recovery(**base)


def test_same_type_in_another_zone_first():
    r = decide()
    assert r.kind == "relaunch" and r.candidate == G5
    assert r.avoid_zones == frozenset({"us-east-1a"})
    assert r.estimate_usd == D("5.50")


def test_every_zone_lost_moves_to_the_next_option():
    r = decide(lost_zones=frozenset({"us-east-1a", "us-east-1b"}))
    assert r.kind == "relaunch" and r.candidate == G6 and r.avoid_zones == frozenset()


def test_budget_decides():
    r = decide(remaining_budget_usd=D("5"))
    assert r.kind == "ask" and "$5.00 left" in r.reason


def test_on_demand_only_when_approved():
    only_od = dict(candidates=[G5_OD], remaining_budget_usd=D("100"))
    assert decide(**only_od).kind == "ask"
    r = decide(**only_od, allow_on_demand=True)
    assert r.kind == "relaunch" and r.candidate == G5_OD


def test_too_many_recoveries_gives_up():
    r = decide(recoveries_so_far=5)
    assert r.kind == "give_up" and "5 recoveries" in r.reason
