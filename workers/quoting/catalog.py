"""The bundled price and hardware catalog: every GPU instance type the quote knows.

Figures come from /work/shared/FACTS.md ("AWS GPU instances", Linux, us-east-1): on-demand prices
and one snapshot of per-zone spot prices from a public price catalog taken in 2025, after AWS's
June 2025 P5 price cut. These are the fallback when no live price can be read, so every price a
quote takes from here says "catalog" and how old the snapshot is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

# The snapshot is from 2025, after the June 2025 P5 price cut; we date it at the earliest day it
# can be, so the age a quote shows is never flattering.
SNAPSHOT_DATE = datetime(2025, 6, 1, tzinfo=UTC)
CATALOG_REGION = "us-east-1"


@dataclass(frozen=True)
class Gpu:
    family: str  # the word people type: gpu=a10g
    name: str  # what the table shows: A10G
    peak_tflops: float  # dense BF16/FP16 tensor throughput, no sparsity
    bf16: bool  # has BF16 tensor cores
    tf32: bool  # has TF32 tensor cores (fp32 training runs at half the BF16 rate)
    source: str


# FACTS.md "GPU peak dense tensor throughput (BF16/FP16, no sparsity)".
GPUS: dict[str, Gpu] = {
    g.family: g
    for g in (
        Gpu("t4", "T4", 65.0, bf16=False, tf32=False, source="T4 datasheet (FP16 only)"),
        # NVIDIA publishes no A10G figure; 125 is the A10's. ~70 is Baseten's estimate.
        Gpu("a10g", "A10G", 70.0, bf16=True, tf32=True, source='Baseten "A10 vs A10G" (~70)'),
        Gpu("l4", "L4", 121.0, bf16=True, tf32=True, source="L4 datasheet"),
        Gpu("l40s", "L40S", 362.0, bf16=True, tf32=True, source="L40S datasheet"),
        Gpu("v100", "V100", 125.0, bf16=False, tf32=False, source="V100 SXM2 datasheet"),
        Gpu("a100", "A100", 312.0, bf16=True, tf32=True, source="A100 datasheet"),
        Gpu("h100", "H100", 989.0, bf16=True, tf32=True, source="H100 SXM datasheet"),
    )
}

# Spot Instance Advisor buckets, as the advisor names them.
BUCKETS = ("<5%", "5-10%", "10-15%", "15-20%", ">20%")


@dataclass(frozen=True)
class Instance:
    type: str
    gpu: str  # family key into GPUS
    gpu_count: int
    gpu_memory_gb: float  # per GPU
    vcpu: int
    ram_gib: int
    on_demand_usd: float  # $/h, Linux, us-east-1
    spot_usd: float | None  # $/h, cheapest zone in the snapshot; None: no spot price seen
    # The advisor's interruption bucket. FACTS.md gives the buckets but not each type's: these are
    # our reading of the advisor (large multi-GPU pools are the scarcest and go first); a live
    # figure belongs here when someone wires the advisor's feed in.
    interruption_bucket: str

    @property
    def gpu_info(self) -> Gpu:
        return GPUS[self.gpu]

    @property
    def label(self) -> str:
        return f"{self.gpu_count}×{self.gpu_info.name}"


# FACTS.md "AWS GPU instances (Linux, us-east-1)". Spot: the low end of the range seen, which is the
# cheapest zone, the same thing the live path reads.
INSTANCES: dict[str, Instance] = {
    i.type: i
    for i in (
        Instance("p3.2xlarge", "v100", 1, 16, 8, 61, 3.06, 0.37, "5-10%"),
        Instance("p3.8xlarge", "v100", 4, 16, 32, 244, 12.24, 1.41, "10-15%"),
        Instance("p3.16xlarge", "v100", 8, 16, 64, 488, 24.48, 2.72, "15-20%"),
        Instance("p4d.24xlarge", "a100", 8, 40, 96, 1152, 21.96, 2.47, ">20%"),
        Instance("p4de.24xlarge", "a100", 8, 80, 96, 1152, 27.45, 8.65, ">20%"),
        Instance("p5.4xlarge", "h100", 1, 80, 16, 256, 6.88, None, "15-20%"),
        Instance("p5.48xlarge", "h100", 8, 80, 192, 2048, 55.04, 17.6, ">20%"),
        Instance("g4dn.xlarge", "t4", 1, 16, 4, 16, 0.526, 0.18, "<5%"),
        Instance("g4dn.12xlarge", "t4", 4, 16, 48, 192, 3.912, 1.27, "5-10%"),
        Instance("g5.xlarge", "a10g", 1, 24, 4, 16, 1.006, 0.40, "5-10%"),
        Instance("g5.2xlarge", "a10g", 1, 24, 8, 32, 1.212, 0.43, "5-10%"),
        Instance("g5.12xlarge", "a10g", 4, 24, 48, 192, 5.672, 1.99, "10-15%"),
        Instance("g5.48xlarge", "a10g", 8, 24, 192, 768, 16.288, 3.93, "15-20%"),
        Instance("g6.xlarge", "l4", 1, 24, 4, 16, 0.8048, 0.39, "<5%"),
        Instance("g6.12xlarge", "l4", 4, 24, 48, 192, 4.6016, 1.86, "5-10%"),
        Instance("g6e.xlarge", "l40s", 1, 48, 4, 32, 1.861, 0.79, "5-10%"),
        Instance("g6e.12xlarge", "l40s", 4, 48, 48, 384, 10.4926, 4.24, "10-15%"),
    )
}

GPU_FAMILIES: tuple[str, ...] = tuple(GPUS)


@dataclass(frozen=True)
class Price:
    """One hourly price with where it came from: every dollar in a quote traces to one of these."""

    usd_per_h: float
    source: str  # live | catalog
    age_s: float  # seconds since it was read (catalog: since the snapshot)
    zone: str | None = None  # the zone of the cheapest spot price, when known


def catalog_prices(now: datetime, types: list[str] | None = None) -> dict[tuple[str, str], Price]:
    """(instance type, market) -> the snapshot's price, aged from the snapshot date."""
    age = max(0.0, (now - SNAPSHOT_DATE).total_seconds())
    out: dict[tuple[str, str], Price] = {}
    for name in types if types is not None else INSTANCES:
        inst = INSTANCES[name]
        out[(name, "on-demand")] = Price(inst.on_demand_usd, "catalog", age)
        if inst.spot_usd is not None:
            out[(name, "spot")] = Price(inst.spot_usd, "catalog", age)
    return out
