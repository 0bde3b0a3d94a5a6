"""The split of a run's cost difference from its approved quote, and the accuracy summary."""

from __future__ import annotations

from decimal import Decimal

import pytest

from workers.rules.accuracy import PARTS, Planned, Ran, differences, explain, summary

PLAN = Planned(label="local (this machine)", hourly_usd=Decimal(36), expected_usd=Decimal(1),
               p90_usd=Decimal("1.2"), setup_s=10.0, train_s=80.0, interruptions_s=0.0)


def test_the_parts_add_up_to_the_difference_exactly():
    ran = [Ran(Decimal(36), 100.0, 12.0, 70.0, interrupted=True),
           Ran(Decimal(36), 60.0, 20.0, 30.0)]
    spent = Decimal("1.6")
    diffs = differences(PLAN, ran, spent)
    assert set(diffs) == set(PARTS)
    assert sum(diffs.values()) == spent - PLAN.expected_usd
    per_s = Decimal(36) / 3600
    assert diffs["price"] == 0
    assert diffs["setup"] == Decimal("2.0") * per_s
    assert diffs["throughput"] == Decimal("20.0") * per_s  # 100 s trained against 80 s
    # the restart's setup + finish (30 s) and the save on the notice (18 s)
    assert diffs["interruptions"] == Decimal("48.0") * per_s


def test_a_price_change_is_named_as_price():
    ran = [Ran(Decimal(72), 100.0, 10.0, 80.0)]
    diffs = differences(PLAN, ran, Decimal(2))
    assert diffs["price"] == Decimal(1)
    assert "price +$1.00" in explain(diffs)


def test_summary_gives_the_median_and_the_worst():
    acc = summary([("j-a", 5.0), ("j-b", -12.0), ("j-c", 31.0)])
    assert acc.median_abs_pct == pytest.approx(12.0)
    assert (acc.worst_job, acc.worst_pct, acc.within_15) == ("j-c", 31.0, 2)
    assert "median |error| 12% over 3 finished runs" in acc.line()
    assert summary([]) is None
