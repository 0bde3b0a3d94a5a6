"""The spend meter (pure): what an attempt has cost, line by line, from billing rules and prices.

Spend is metered, never guessed. For every running interval of an attempt:

* EC2 bills Linux per second, with a 60-second minimum each time an instance enters the running
  state (docs/spot-and-billing.md). A spot instance pays the spot price *in force* for
  its type and zone, which changes over time, so an interval is split where the price history
  changes and each piece is priced at its own rate.
* The root volume (EBS gp3) is billed per GB-month, prorated per second while it exists.

Each result line says which price, which seconds and which rule made it, so a job's cost can be
explained to the cent. Money is Decimal throughout; floats never touch a sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

MIN_BILLED_S = 60  # per start (EC2 Linux on-demand and spot: docs/spot-and-billing.md)
SECONDS_PER_HOUR = Decimal(3600)
# gp3 in us-east-1: $0.08 per GB-month (AWS EBS pricing); a month is 730 hours in AWS's
# proration of monthly prices.
GP3_USD_PER_GB_MONTH = Decimal("0.08")
SECONDS_PER_BILLING_MONTH = Decimal(730 * 3600)
MICRO = Decimal("0.000001")


@dataclass(frozen=True)
class PricePoint:
    """A price that took effect at `at` (a spot price history entry, or a fixed rate)."""

    at: datetime
    usd_per_hour: Decimal
    source: str  # e.g. "spot us-east-1a (price history)", "on-demand (catalog 2025-06)"


@dataclass(frozen=True)
class SpendLine:
    start: datetime
    end: datetime
    billed_s: Decimal
    usd_per_hour: Decimal
    amount_usd: Decimal
    rule: str


def usd(value: Decimal) -> Decimal:
    return value.quantize(MICRO, rounding=ROUND_HALF_UP)


def price_at(prices: Sequence[PricePoint], at: datetime) -> PricePoint:
    """The price in force at `at`: the newest point not after it. Before the first known point
    the first one is used (a history read a little after launch still prices the launch)."""
    if not prices:
        raise ValueError("no price to meter with")
    current = prices[0]
    for point in prices:
        if point.at <= at:
            current = point
        else:
            break
    return current


def meter_instance(
    launched_at: datetime, until: datetime, prices: Sequence[PricePoint]
) -> list[SpendLine]:
    """Instance-hours of one start, from launch to `until` (now, or when it ended)."""
    prices = sorted(prices, key=lambda p: p.at)
    until = max(until, launched_at)
    cuts = [p.at for p in prices if launched_at < p.at < until]
    edges = [launched_at, *cuts, until]
    lines: list[SpendLine] = []
    for start, end in zip(edges, edges[1:], strict=False):
        seconds = Decimal(str((end - start).total_seconds()))
        if seconds <= 0:
            continue
        point = price_at(prices, start)
        lines.append(
            SpendLine(
                start, end, seconds, point.usd_per_hour,
                usd(seconds * point.usd_per_hour / SECONDS_PER_HOUR),
                f"per-second billing at {point.source} ${point.usd_per_hour}/h",
            )
        )
    running = Decimal(str((until - launched_at).total_seconds()))
    if running < MIN_BILLED_S:
        # The minimum is charged at the rate in force at the start, once per start.
        point = price_at(prices, launched_at)
        topup = Decimal(MIN_BILLED_S) - running
        lines.append(
            SpendLine(
                launched_at, launched_at + timedelta(seconds=MIN_BILLED_S), topup,
                point.usd_per_hour, usd(topup * point.usd_per_hour / SECONDS_PER_HOUR),
                f"{MIN_BILLED_S} s minimum per start ({running:.0f} s ran)",
            )
        )
    return lines


def meter_disk(launched_at: datetime, until: datetime, disk_gb: int) -> SpendLine | None:
    if disk_gb <= 0:
        return None
    seconds = Decimal(str(max(MIN_BILLED_S, (until - launched_at).total_seconds())))
    rate_per_hour = Decimal(disk_gb) * GP3_USD_PER_GB_MONTH * SECONDS_PER_HOUR / SECONDS_PER_BILLING_MONTH
    return SpendLine(
        launched_at, until, seconds, usd(rate_per_hour),
        usd(seconds * Decimal(disk_gb) * GP3_USD_PER_GB_MONTH / SECONDS_PER_BILLING_MONTH),
        f"gp3 {disk_gb} GB at ${GP3_USD_PER_GB_MONTH}/GB-month, per second",
    )


def meter_attempt(
    launched_at: datetime, until: datetime, prices: Sequence[PricePoint], disk_gb: int = 0
) -> list[SpendLine]:
    lines = meter_instance(launched_at, until, prices)
    disk = meter_disk(launched_at, until, disk_gb)
    return lines + ([disk] if disk else [])


def total(lines: Sequence[SpendLine]) -> Decimal:
    return usd(sum((line.amount_usd for line in lines), Decimal(0)))
