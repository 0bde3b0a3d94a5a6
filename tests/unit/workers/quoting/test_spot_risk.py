"""Spot risk and catalog spot prices in quotes: restarts as a Poisson process in run hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.grammar.commands import parse_request
from workers.quoting.calibration import Calibration
from workers.quoting.catalog import INSTANCES, SPOT_BASIS, catalog_prices
from workers.quoting.estimator import estimate
from workers.quoting.spot import exposure, pool_risk

PRICES = catalog_prices(datetime(2025, 12, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def config():
    from schemas.config import load_config

    return load_config(None)


# These quotes are about the work a team's own data makes. On a bundled set (demo: 400 rows,
# demo-rl: 256) the quote cuts samples= to the rows the recipe can train on, as the recipe does;
# a Hub id's size is unknown here, so samples= is quoted as given.
TEAM_DATA = "data=acme/support-tickets"


def quote(text, config):
    if "data=" not in text:
        text = f"{text} {TEAM_DATA}"
    return estimate(parse_request(text, config), config, PRICES, Calibration())


def test_gpu_spot_is_five_percent_an_hour_and_the_bucket_only_modifies_it():
    g5 = pool_risk("g5.xlarge", "5-10%")
    assert g5.per_hour == pytest.approx(0.05) and "bucket 5-10%" in g5.source
    assert pool_risk("g6.xlarge", "<5%").per_hour < g5.per_hour
    assert pool_risk("p4d.24xlarge", ">20%").per_hour > 2 * g5.per_hour
    assert pool_risk("p5.48xlarge", ">20%").capacity_wait_s > g5.capacity_wait_s
    # the seed plans' figure: 8 hours at 5%/h is about a one-in-three chance
    assert exposure(0.05, 8 * 3600, 0).chance_any == pytest.approx(0.33, abs=0.02)


def test_an_eight_hour_spot_run_has_a_p90_with_a_restart(config):
    o = quote("sft samples=10000 instance=g5.xlarge spot=yes", config).options[0]
    assert 7 < o.hours < 10
    assert o.restarts_p90 >= 1 and o.cost_p90_usd > o.cost_usd
    assert 0.3 < o.interruption_chance < 0.45 and o.expected_restarts > 0.3
    assert o.phases["interruptions"] > 0 and o.phases["capacity_wait"] > 0


def test_a_twenty_minute_spot_run_does_not(config):
    o = quote("sft samples=450 instance=g5.xlarge spot=yes", config).options[0]
    assert 0.2 < o.hours < 0.6
    assert o.restarts_p90 == 0 and o.cost_p90_usd == o.cost_usd


def test_recommendation_prefers_a_p90_within_the_cap(config):
    from workers.quoting.catalog import Price

    text = f"sft samples=60000 instance=g5.xlarge {TEAM_DATA}"
    spot_price = 0.5
    prices = {("g5.xlarge", "spot"): Price(spot_price, "catalog", 0.0),
              ("g5.xlarge", "on-demand"): Price(spot_price, "catalog", 0.0)}

    def run(budget, on_demand_usd):
        prices[("g5.xlarge", "on-demand")] = Price(on_demand_usd, "catalog", 0.0)
        return estimate(parse_request(f"{text} budget={budget}", config), config, prices,
                        Calibration())

    # On-demand priced just above spot's expected cost: spot is the cheapest on expected cost,
    # its P90 (with restarts) is not.
    probe = run(5000, spot_price)
    spot = next(o for o in probe.options if o.market == "spot")
    demand = next(o for o in probe.options if o.market == "on-demand")
    on_demand_usd = spot_price * spot.cost_usd / demand.cost_usd * 1.002
    cap = (spot.cost_usd * 1.003 + spot.cost_p90_usd) / 2
    q = run(f"{cap:.4f}", on_demand_usd)
    spot = next(o for o in q.options if o.market == "spot")
    assert q.options[0] is spot and spot.fits_budget and not spot.fits_cap_p90
    assert q.recommended.market == "on-demand" and q.recommended.cost_p90_usd <= cap
    assert any("would exceed" in n for n in q.notes)
    # with room in the cap, the cheapest on expected cost is recommended again
    assert run(5000, on_demand_usd).recommended.market == "spot"


def test_catalog_spot_is_the_zone_median_and_says_so(config):
    p4d = INSTANCES["p4d.24xlarge"]
    assert p4d.spot_usd == pytest.approx((2.47 + 8.19) / 2)
    price = PRICES[("p4d.24xlarge", "spot")]
    assert price.usd_per_h == p4d.spot_usd and price.basis == SPOT_BASIS
    assert "zone median" in SPOT_BASIS
    o = quote("sft samples=100 instance=p4d.24xlarge spot=yes", config).options[0]
    assert o.price_basis == SPOT_BASIS and o.hourly_usd == pytest.approx(5.33)
