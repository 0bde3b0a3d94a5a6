"""Live prices against moto's server: the plumbing, the cache and the fallbacks. moto's prices
are placeholders, so no test here trusts a number from it."""

from __future__ import annotations

import pytest

from bot.grammar.commands import parse_request
from workers.quoting import make_quote
from workers.quoting.catalog import INSTANCES
from workers.quoting.prices import PriceBook, credentials_configured, on_demand_usd

TYPES = ["g5.xlarge", "g6e.xlarge", "p4d.24xlarge"]


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_spot_prices_are_read_live_per_type_from_the_cheapest_zone(moto_reset):
    book, notes = PriceBook(live=True).prices(TYPES, "us-east-1")
    for name in TYPES:
        spot = book[(name, "spot")]
        assert spot.source == "live" and spot.usd_per_h > 0 and spot.age_s < 5
        assert spot.zone is not None and spot.zone.startswith("us-east-1")
    # moto has no Pricing API: on-demand falls back to the catalog, and the quote says so
    for name in TYPES:
        demand = book[(name, "on-demand")]
        assert demand.source == "catalog" and demand.usd_per_h == INSTANCES[name].on_demand_usd
    assert any(n.startswith("live on-demand prices unavailable") for n in notes)


def test_live_prices_are_cached_for_a_few_minutes(moto_reset):
    clock = Clock(1_000_000.0)
    book = PriceBook(live=True, clock=clock, ttl_s=300)
    first, _ = book.prices(TYPES, "us-east-1")
    assert first[("g5.xlarge", "spot")].age_s == 0
    clock.t += 120
    cached, _ = book.prices(TYPES, "us-east-1")
    assert cached[("g5.xlarge", "spot")].age_s == 120  # the same read, two minutes older
    assert cached[("g5.xlarge", "spot")].usd_per_h == first[("g5.xlarge", "spot")].usd_per_h
    clock.t += 200  # past the five minutes: read again
    again, _ = book.prices(TYPES, "us-east-1")
    assert again[("g5.xlarge", "spot")].age_s == 0 and again[("g5.xlarge", "spot")].source == "live"


def test_a_quote_names_its_live_prices(moto_reset, config):
    request = parse_request("sft samples=1000 gpu=a10g", config)
    q = make_quote(request, config, live=True)
    spot = [o for o in q.options if o.market == "spot"]
    assert spot and all(o.price_source == "live" and o.zone for o in spot)
    demand = [o for o in q.options if o.market == "on-demand"]
    assert demand and all(o.price_source == "catalog" and o.price_age_s > 86400 for o in demand)
    for o in spot:  # spot never dearer than on-demand of the same type
        same = next(d for d in demand if d.instance_type == o.instance_type)
        assert o.hourly_usd <= same.hourly_usd


def test_credentials_in_the_environment_mean_live(moto_reset, config, monkeypatch):
    assert credentials_configured()  # moto_server set AWS_ACCESS_KEY_ID
    q = make_quote(parse_request("sft samples=100 instance=g5.xlarge", config), config)
    assert {o.price_source for o in q.options if o.market == "spot"} == {"live"}


def test_an_unreachable_endpoint_falls_back_to_the_catalog_with_a_note(aws_endpoint, config,
                                                                        monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    request = parse_request("sft samples=1000 gpu=a10g", config)
    q = make_quote(request, config, live=True)
    assert q.options and all(o.price_source == "catalog" for o in q.options)
    assert q.recommended is not None
    joined = " ".join(q.notes)
    assert "live spot prices unavailable" in joined and "live on-demand prices unavailable" in joined
    assert "catalog snapshot" in joined


def test_no_credentials_means_catalog_and_a_note(config, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert not credentials_configured()
    assert credentials_configured("aws")  # the aws provider: an instance role may answer
    q = make_quote(parse_request("sft samples=100", config), config)
    assert all(o.price_source == "catalog" for o in q.options)
    assert any("configure AWS credentials for live prices" in n for n in q.notes)


@pytest.mark.parametrize(("price_list", "usd"), [
    ([], None),
    (['{"terms": {"OnDemand": {"X": {"priceDimensions": {"Y": {"unit": "Hrs", '
      '"pricePerUnit": {"USD": "1.0060000000"}}}}}}}'], 1.006),
    ([{"terms": {"OnDemand": {"X": {"priceDimensions": {"Y": {"unit": "Hrs",
                                                             "pricePerUnit": {"USD": "0"}}}}}}}],
     None),
])
def test_pricing_api_products_are_read(price_list, usd):
    assert on_demand_usd(price_list) == usd
