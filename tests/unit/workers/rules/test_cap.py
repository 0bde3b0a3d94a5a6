"""The spend guard's decisions, as a table."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from workers.rules.cap import Action, Meter, deadline, decide, projected_final

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def meter(**kw) -> Meter:
    base = dict(now=NOW, spent_usd=D("10"), cap_usd=D("100"), warn_fraction=D("0.8"),
                usd_per_hour=D("3.60"), tick_s=30)
    base.update(kw)
    return Meter(**base)


@pytest.mark.parametrize(
    "kw, actions",
    [
        ({}, ()),
        ({"spent_usd": D("79.99")}, ()),
        ({"spent_usd": D("80")}, (Action.WARN,)),
        ({"spent_usd": D("85"), "warned_at_cap": D("100")}, ()),
        # An extended cap deserves a new warning when its own 80% comes.
        ({"spent_usd": D("130"), "cap_usd": D("150"), "warned_at_cap": D("100")}, (Action.WARN,)),
        ({"projected_final_usd": D("120")}, (Action.WARN,)),
        ({"projected_final_usd": D("99")}, ()),
        # 30 s at $3.60/h is $0.03: stop when the next tick would cross the cap.
        ({"spent_usd": D("99.97"), "warned_at_cap": D("100")}, (Action.STOP,)),
        ({"spent_usd": D("99.96"), "warned_at_cap": D("100")}, ()),
        ({"spent_usd": D("100"), "warned_at_cap": D("100")}, (Action.STOP,)),
        ({"spent_usd": D("100")}, (Action.WARN, Action.STOP)),
        ({"spent_usd": D("100.5"), "warned_at_cap": D("100"),
          "stop_requested_at": NOW - timedelta(seconds=119)}, ()),
        ({"spent_usd": D("100.5"), "warned_at_cap": D("100"),
          "stop_requested_at": NOW - timedelta(seconds=120)}, (Action.TERMINATE,)),
    ],
)
def test_decisions(kw, actions):
    decision = decide(meter(**kw))
    assert decision.actions == actions
    assert len(decision.reasons) == len(actions)


def test_warning_reason_names_the_numbers():
    reason = decide(meter(spent_usd=D("80"))).reasons[0]
    assert "$80.00" in reason and "$100.00" in reason and "80%" in reason


@pytest.mark.parametrize(
    "spent, cap, rate, expected_s",
    [
        (D("0"), D("3.60"), D("3.60"), 3600 - 60),  # an hour of money, less the reserve
        (D("3.00"), D("3.60"), D("3.60"), 600 - 60),
        (D("3.59"), D("3.60"), D("3.60"), 0),  # 10 s left is inside the reserve: stop now
        (D("4"), D("3.60"), D("3.60"), 0),  # over the cap already
    ],
)
def test_deadline_is_when_the_money_runs_out(spent, cap, rate, expected_s):
    assert deadline(NOW, spent, cap, rate) == NOW + timedelta(seconds=expected_s)


def test_free_machine_has_no_money_deadline():
    assert deadline(NOW, D("0"), D("10"), D("0")) is None


def test_projected_final():
    assert projected_final(D("10"), D("3.60"), 1800) == D("11.80")
    assert projected_final(D("10"), D("3.60"), None) is None
