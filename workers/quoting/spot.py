"""Spot risk as it is: how often a pool loses instances, and what each restart costs.

Pure. docs/spot-and-billing.md gives the sources. In short: AWS publishes no per-hour rate; the
Spot Instance Advisor's bucket is the share of a type's instances interrupted over the trailing
month, averaged over its pools, which says more about one pool versus another than about an
hour of a GPU job. We plan with 5% per hour for GPU spot (an 8-hour run is interrupted with
~1 - e^-0.4 = 33% chance), more for the scarce 8-GPU pools, and read the bucket as a modifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Interruptions per running hour by pool. GPU spot: 5%/h, our planning figure. The 8-GPU A100 and
# H100 pools (p4d, p4de, p5.48xlarge) are the scarcest capacity AWS sells: public trackers put
# p5 in the advisor's 10-20% band with "capacity scarce; queues common", and a lost p4d/p5 is
# often not replaceable for a while. Twice the rate, and a long capacity wait.
SCARCE_POOLS = ("p4d.", "p4de.", "p5.48xlarge")
RATE_PER_H = {"gpu": 0.05, "scarce": 0.10}
# The advisor bucket moves the rate around the pool's figure; "5-10%" is the typical GPU bucket.
BUCKET_MODIFIER = {"<5%": 0.6, "5-10%": 1.0, "10-15%": 1.3, "15-20%": 1.6, ">20%": 2.0}
# After an interruption, how long until the same kind of machine can be had again: not billed
# (nothing runs), but it is wall-clock time a deadline sees.
CAPACITY_WAIT_S = {"gpu": 600.0, "scarce": 3600.0}


@dataclass(frozen=True)
class PoolRisk:
    per_hour: float  # expected interruptions per running hour
    capacity_wait_s: float
    source: str


def pool_risk(instance_type: str, bucket: str | None) -> PoolRisk:
    pool = "scarce" if instance_type.startswith(SCARCE_POOLS) else "gpu"
    modifier = BUCKET_MODIFIER.get(bucket or "", 1.0)
    rate = RATE_PER_H[pool] * modifier
    what = "scarce 8-GPU pool" if pool == "scarce" else "GPU spot"
    source = (f"{RATE_PER_H[pool]:.0%}/h {what} x{modifier:g} for advisor bucket {bucket}"
              if bucket else f"{RATE_PER_H[pool]:.0%}/h {what}")
    return PoolRisk(rate, CAPACITY_WAIT_S[pool], source)


@dataclass(frozen=True)
class Restart:
    """What one interruption costs: billed seconds (boot and setup again, the work since the last
    checkpoint, loading that checkpoint) and unbilled waiting for capacity."""

    billed_s: float
    wait_s: float


def restart_cost(setup_s: float, checkpoint_every_s: float, train_s: float, reload_s: float,
                 capacity_wait_s: float) -> Restart:
    # Work since the last checkpoint: half an interval on average (never more than the run).
    lost = min(checkpoint_every_s, train_s) / 2.0
    return Restart(billed_s=setup_s + lost + reload_s, wait_s=capacity_wait_s)


def poisson_quantile(mean: float, q: float = 0.9) -> int:
    """Smallest k with P(X <= k) >= q for X ~ Poisson(mean)."""
    if mean > 50:  # exp(-mean) underflows further on; the normal approximation is close here
        return math.ceil(mean + 1.2816 * math.sqrt(mean))
    k, term = 0, math.exp(-mean)
    total = term
    while total < q and k < 1000:
        k += 1
        term *= mean / k
        total += term
    return k


@dataclass(frozen=True)
class Exposure:
    expected: float  # expected number of interruptions
    p90: int  # the 90th percentile of the number of interruptions
    chance_any: float  # probability of at least one


def exposure(per_hour: float, run_s: float, restart_billed_s: float) -> Exposure:
    """Interruptions over a run as a Poisson process in running hours. Every restart adds
    running time, which is exposed too: n = λ·(T + n·r), so n = λT / (1 - λr)."""
    lam = per_hour / 3600.0
    denom = max(0.2, 1.0 - lam * restart_billed_s)  # a restart that outlasts 1/λ never ends
    mean = lam * run_s / denom
    return Exposure(mean, poisson_quantile(mean, 0.9), 1.0 - math.exp(-mean))
