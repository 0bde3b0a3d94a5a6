"""The spend meter against hand-computed bills."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from workers.rules.billing import PricePoint, meter_attempt, meter_instance, total

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def flat(rate: str) -> list[PricePoint]:
    return [PricePoint(T0 - timedelta(hours=1), Decimal(rate), "spot us-east-1a")]


@pytest.mark.parametrize(
    "ran_s, rate, expected",
    [
        (3600, "0.40", "0.400000"),  # an hour at $0.40/h
        (90, "3.60", "0.090000"),  # per second: 90 s at $0.001/s
        (10, "3.60", "0.060000"),  # the 60 s minimum per start
        (0, "3.60", "0.060000"),  # a start that ran no time still pays the minimum
        (60, "3.60", "0.060000"),  # exactly the minimum: no top-up
        (1, "0.526", "0.008767"),  # rounded half-up to the micro-dollar
    ],
)
def test_per_second_billing_with_a_minimum(ran_s, rate, expected):
    assert total(meter_instance(T0, at(ran_s), flat(rate))) == Decimal(expected)


def test_price_changes_split_the_interval():
    prices = [
        PricePoint(T0 - timedelta(minutes=5), Decimal("0.40"), "spot a"),
        PricePoint(at(1800), Decimal("0.80"), "spot a"),
    ]
    lines = meter_instance(T0, at(3600), prices)
    assert [line.usd_per_hour for line in lines] == [Decimal("0.40"), Decimal("0.80")]
    assert total(lines) == Decimal("0.600000")  # half an hour at each price
    assert all("per-second billing" in line.rule for line in lines)


def test_minimum_line_says_why():
    lines = meter_instance(T0, at(20), flat("3.60"))
    assert lines[-1].rule.startswith("60 s minimum per start")
    assert lines[-1].billed_s == Decimal(40)


def test_disk_is_prorated_per_second():
    lines = meter_attempt(T0, at(730 * 3600), flat("0"), disk_gb=100)
    disk = [line for line in lines if line.rule.startswith("gp3")]
    assert total(disk) == Decimal("8.000000")  # 100 GB × $0.08 for a whole billing month


def test_until_before_launch_bills_only_the_minimum():
    assert total(meter_instance(T0, at(-50), flat("3.60"))) == Decimal("0.060000")


def test_no_price_is_an_error():
    with pytest.raises(ValueError):
        meter_instance(T0, at(10), [])
