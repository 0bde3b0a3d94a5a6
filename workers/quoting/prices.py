"""Where prices come from: live from AWS when credentials exist, else the bundled catalog.

Spot: EC2 DescribeSpotPriceHistory (Linux/UNIX (Amazon VPC), the last hour, the cheapest zone per
type: the price in force where we launch). On-demand: the Pricing API's get_products on its
us-east-1 endpoint (Linux, shared tenancy, no pre-installed software, capacity status Used). Live reads are cached in-process for a few minutes; an AWS problem of any kind falls back
to the catalog for what could not be read, with a note the person sees. boto3 is imported only
here, and only when a live read is wanted, so `trainops quote` stays fast without it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.settings import aws_config_files, aws_credentials_in_environment, get_settings
from workers.quoting.catalog import SNAPSHOT_DATE, Price, catalog_prices

CACHE_TTL_S = 300.0  # live prices older than this are read again
FAILURE_TTL_S = 60.0  # a failed read is not retried for every quote in a burst
SPOT_PRODUCT = "Linux/UNIX (Amazon VPC)"
PRICING_REGION = "us-east-1"  # the Pricing API's endpoint (it also serves every other region)

# The Pricing API filters by location name, not region code.
LOCATIONS = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)", "us-west-2": "US West (Oregon)",
    "ca-central-1": "Canada (Central)", "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)", "eu-west-3": "EU (Paris)", "eu-central-1": "EU (Frankfurt)",
    "eu-north-1": "EU (Stockholm)", "ap-south-1": "Asia Pacific (Mumbai)",
    "ap-northeast-1": "Asia Pacific (Tokyo)", "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-southeast-1": "Asia Pacific (Singapore)", "ap-southeast-2": "Asia Pacific (Sydney)",
    "sa-east-1": "South America (Sao Paulo)",
}

def credentials_configured(provider: str = "local") -> bool:
    """Whether live prices are worth trying: credentials in the environment, the aws provider
    (an instance role counts), or a credentials file that boto3 can read. boto3 is imported only
    in the last case."""
    if aws_credentials_in_environment() or provider == "aws":
        return True
    if not any(Path(f).expanduser().is_file() for f in aws_config_files()):
        return False
    try:
        import boto3

        return boto3.session.Session().get_credentials() is not None
    except Exception:  # a broken profile means no live prices, not a crash
        return False


# (kind, endpoint, region, instance type) -> (read at, $/h or None when AWS has none, zone);
# kind is "spot" | "on-demand".
_cache: dict[tuple[str, str, str, str], tuple[float, float | None, str | None]] = {}
# (kind, endpoint, region) -> (failed at, note)
_failures: dict[tuple[str, str, str], tuple[float, str]] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()
        _failures.clear()


class PriceBook:
    """Prices for a set of instance types in one region, each with its source and age."""

    def __init__(self, *, live: bool, clock: Callable[[], float] = time.time,
                 ttl_s: float = CACHE_TTL_S):
        self.live = live
        self.clock = clock
        self.ttl_s = ttl_s

    def prices(self, types: Iterable[str], region: str
               ) -> tuple[dict[tuple[str, str], Price], list[str]]:
        types = sorted(set(types))
        now = self.clock()
        book = catalog_prices(datetime.fromtimestamp(now, UTC), types)
        days = (datetime.fromtimestamp(now, UTC) - SNAPSHOT_DATE).days
        snapshot = (f"catalog snapshot of {SNAPSHOT_DATE:%Y-%m-%d} ({days} days old; spot at the "
                    "catalog zone median, the midpoint of the zones' low-high range)")
        if not self.live:
            return book, [f"prices: {snapshot}; configure AWS credentials for live prices"]
        notes = []
        endpoint = get_settings().aws_endpoint_url
        kinds = {"spot": _read_spot, "on-demand": _read_on_demand}
        known = {kind: self._cached(kind, endpoint, types, region, now) for kind in kinds}
        stale = [kind for kind in kinds if len(known[kind]) < len(types)]
        failures = {kind: note for kind in stale
                    if (note := self._recent_failure(kind, endpoint, region, now))}
        stale = [kind for kind in stale if kind not in failures]
        if stale:
            # Both reads at once: a quote waits for the slower, not the sum.
            with ThreadPoolExecutor(max_workers=len(stale)) as pool:
                done = pool.map(lambda k: self._read(k, kinds[k], endpoint, known[k], types,
                                                     region, now), stale)
                failures.update({k: note for k, note in zip(stale, done, strict=True) if note})
        for kind in kinds:
            for name, (read_at, usd, zone) in known[kind].items():
                if usd is not None:
                    basis = "cheapest zone now" if kind == "spot" else "on-demand list price"
                    book[(name, kind)] = Price(usd, "live", max(0.0, now - read_at), zone, basis)
            if kind in failures:
                notes.append(f"live {kind} prices unavailable ({failures[kind]}): using the "
                             f"{snapshot}")
            missing = [t for t in types if known[kind].get(t, (0, None))[1] is None]
            if missing and kind not in failures:
                notes.append(f"no live {kind} price for {', '.join(missing)}: using the "
                             f"{snapshot}")
        return book, notes

    def _cached(self, kind: str, endpoint: str, types: list[str], region: str, now: float
                ) -> dict[str, tuple[float, float | None, str | None]]:
        with _lock:
            hits = {t: _cache.get((kind, endpoint, region, t)) for t in types}
        return {t: hit for t, hit in hits.items() if hit and now - hit[0] < self.ttl_s}

    @staticmethod
    def _recent_failure(kind: str, endpoint: str, region: str, now: float) -> str | None:
        with _lock:
            failed = _failures.get((kind, endpoint, region))
        return failed[1] if failed and now - failed[0] < FAILURE_TTL_S else None

    def _read(self, kind: str, reader, endpoint: str, known: dict, types: list[str],
              region: str, now: float) -> str | None:
        """Read what the cache lacks into `known`; the failure note, or None."""
        missing = [t for t in types if t not in known]
        try:
            got = reader(missing, region)
        except Exception as exc:  # any AWS or network problem: the catalog answers instead
            text = str(exc).splitlines()[0][:160] if str(exc) else ""
            note = f"{type(exc).__name__}: {text}".rstrip(": ")
            with _lock:
                _failures[(kind, endpoint, region)] = (now, note)
            return note
        with _lock:
            # A type AWS has no price for is remembered too (as None), so it is not asked again
            # on every quote.
            for name in missing:
                usd, zone = got.get(name, (None, None))
                _cache[(kind, endpoint, region, name)] = known[name] = (now, usd, zone)
        return None


def _client(service: str, region: str):
    import boto3
    from botocore.config import Config

    # A quote must answer in seconds: short timeouts, one retry.
    config = Config(connect_timeout=3, read_timeout=10,
                    retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client(service, region_name=region, config=config)


def _read_spot(types: list[str], region: str) -> dict[str, tuple[float, str | None]]:
    """The cheapest zone's current spot price per type, over the last hour."""
    ec2 = _client("ec2", region)
    start = datetime.now(UTC) - timedelta(hours=1)
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    pages = ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=types, ProductDescriptions=[SPOT_PRODUCT], StartTime=start)
    for page in pages:
        for rec in page.get("SpotPriceHistory", []):
            key = (rec["InstanceType"], rec["AvailabilityZone"])
            stamp = rec["Timestamp"]
            if key not in latest or stamp > latest[key][0]:
                latest[key] = (stamp, float(rec["SpotPrice"]))
    best: dict[str, tuple[float, str | None]] = {}
    for (name, zone), (_, usd) in latest.items():
        if usd > 0 and (name not in best or usd < best[name][0]):
            best[name] = (usd, zone)
    return best


def _read_on_demand(types: list[str], region: str) -> dict[str, tuple[float, str | None]]:
    location = LOCATIONS.get(region)
    if location is None:
        raise LookupError(f"no Pricing API location known for {region}")
    pricing = _client("pricing", PRICING_REGION)

    def one(name: str) -> tuple[str, float | None]:
        filters = {"instanceType": name, "location": location, "operatingSystem": "Linux",
                   "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}
        resp = pricing.get_products(
            ServiceCode="AmazonEC2", MaxResults=10,
            Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()])
        return name, on_demand_usd(resp.get("PriceList", []))

    with ThreadPoolExecutor(max_workers=min(8, len(types))) as pool:
        results = list(pool.map(one, types))
    return {name: (usd, None) for name, usd in results if usd is not None}


def on_demand_usd(price_list: list[str | dict]) -> float | None:
    """The hourly USD price in a Pricing API PriceList (JSON strings, one per product)."""
    for item in price_list:
        product = json.loads(item) if isinstance(item, str) else item
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                usd = float(dim.get("pricePerUnit", {}).get("USD", "0") or 0)
                if usd > 0 and dim.get("unit", "Hrs").lower().startswith("hr"):
                    return usd
    return None
