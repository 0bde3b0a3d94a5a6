"""The bundled price and hardware catalog: every GPU instance type the quote knows.

Figures: on-demand prices and one snapshot of per-zone spot prices (Linux, us-east-1) from a
public price catalog taken in 2025, after AWS's June 2025 P5 price cut. Spot is quoted at the
catalog zone median (docs/spot-and-billing.md). These are the fallback when no live price can be read, so every price a
quote takes from here says "catalog" and how old the snapshot is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

# The snapshot is from 2025, after the June 2025 P5 price cut; we date it at the earliest day it
# can be, so the age a quote shows is never flattering.
SNAPSHOT_DATE = datetime(2025, 6, 1, tzinfo=UTC)
CATALOG_REGION = "us-east-1"
SPOT_BASIS = "catalog zone median (midpoint of the zones' low-high range)"


@dataclass(frozen=True)
class Gpu:
    family: str  # the word people type: gpu=a10g
    name: str  # what the table shows: A10G
    peak_tflops: float  # dense BF16/FP16 tensor throughput, no sparsity
    bf16: bool  # has BF16 tensor cores
    tf32: bool  # has TF32 tensor cores (fp32 training runs at half the BF16 rate)
    source: str


# Peak dense tensor throughput (BF16/FP16, no sparsity), from each GPU's datasheet.
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
    # $/h (low, high) across the zones the snapshot saw; None: no spot price seen. The snapshot
    # kept only the range, not each zone's price.
    spot_usd_range: tuple[float, float] | None
    # The advisor's interruption bucket. The buckets are AWS's; each type's here is
    # our reading of the advisor (large multi-GPU pools are the scarcest and go first); a live
    # figure belongs here when someone wires the advisor's feed in.
    interruption_bucket: str
    # GPU-to-GPU link inside the instance: nvlink (p3.8x/16x, p4d, p4de, p5.48x), pcie (g-family
    # multi-GPU), none (one GPU). Feeds throughput.scaling_efficiency.
    interconnect: str = "none"

    @property
    def spot_usd(self) -> float | None:
        """The catalog zone median: the zone a launch lands in is not the cheapest one seen, so
        the cheapest zone would flatter every quote. With only the low and high of the zones
        kept, the median we can take honestly is their midpoint."""
        if self.spot_usd_range is None:
            return None
        low, high = self.spot_usd_range
        return round((low + high) / 2.0, 4)

    @property
    def gpu_info(self) -> Gpu:
        return GPUS[self.gpu]

    @property
    def label(self) -> str:
        return f"{self.gpu_count}×{self.gpu_info.name}"


# On-demand $/h, Linux, us-east-1, and the low-high range of per-zone spot prices in one 2025
# snapshot of a public price catalog (docs/spot-and-billing.md).
INSTANCES: dict[str, Instance] = {
    i.type: i
    for i in (
        Instance("p3.2xlarge", "v100", 1, 16, 8, 61, 3.06, (0.37, 0.43), "5-10%", "none"),
        Instance("p3.8xlarge", "v100", 4, 16, 32, 244, 12.24, (1.41, 1.51), "10-15%", "nvlink"),
        Instance("p3.16xlarge", "v100", 8, 16, 64, 488, 24.48, (2.72, 2.72), "15-20%", "nvlink"),
        Instance("p4d.24xlarge", "a100", 8, 40, 96, 1152, 21.96, (2.47, 8.19), ">20%", "nvlink"),
        Instance("p4de.24xlarge", "a100", 8, 80, 96, 1152, 27.45, (8.65, 9.97), ">20%", "nvlink"),
        Instance("p5.4xlarge", "h100", 1, 80, 16, 256, 6.88, None, "15-20%", "none"),
        Instance("p5.48xlarge", "h100", 8, 80, 192, 2048, 55.04, (17.6, 25.8), ">20%", "nvlink"),
        Instance("g4dn.xlarge", "t4", 1, 16, 4, 16, 0.526, (0.18, 0.2), "<5%", "none"),
        Instance("g4dn.12xlarge", "t4", 4, 16, 48, 192, 3.912, (1.27, 1.52), "5-10%", "pcie"),
        Instance("g5.xlarge", "a10g", 1, 24, 4, 16, 1.006, (0.4, 0.42), "5-10%", "none"),
        Instance("g5.2xlarge", "a10g", 1, 24, 8, 32, 1.212, (0.43, 0.61), "5-10%", "none"),
        Instance("g5.12xlarge", "a10g", 4, 24, 48, 192, 5.672, (1.99, 2.73), "10-15%", "pcie"),
        Instance("g5.48xlarge", "a10g", 8, 24, 192, 768, 16.288, (3.93, 4.63), "15-20%", "pcie"),
        Instance("g6.xlarge", "l4", 1, 24, 4, 16, 0.8048, (0.39, 0.42), "<5%", "none"),
        Instance("g6.12xlarge", "l4", 4, 24, 48, 192, 4.6016, (1.86, 2.34), "5-10%", "pcie"),
        Instance("g6e.xlarge", "l40s", 1, 48, 4, 32, 1.861, (0.79, 1.21), "5-10%", "none"),
        Instance("g6e.12xlarge", "l40s", 4, 48, 48, 384, 10.4926, (4.24, 6.03), "10-15%", "pcie"),
    )
}

GPU_FAMILIES: tuple[str, ...] = tuple(GPUS)

# -- Memory and link bandwidth (issues #11, #12; docs/stages-and-gpus.md) -----------------------
# HBM/GDDR bandwidth in GB/s from each GPU's datasheet. Decoding reads every weight once per
# generated token of the whole batch, so this, not FLOP/s, sets the generation speed. The A100's
# depends on the part: 40 GB (p4d) 1,555 GB/s, 80 GB (p4de) 2,039 GB/s. H200 (141 GB, 4,800 GB/s)
# has no instance in the catalog yet.
HBM_GBS: dict[str, float] = {
    "t4": 320.0, "a10g": 600.0, "l4": 300.0, "l40s": 864.0, "v100": 900.0, "a100": 2039.0,
    "h100": 3350.0, "h200": 4800.0,
}
A100_40GB_HBM_GBS = 1555.0
# GPU-to-GPU bandwidth per GPU, GB/s, one direction. NVLink from the datasheets (V100 300,
# A100 600, H100 900 total, taken as what an all-gather gets); PCIe is what a x16 link carries in
# practice (gen3 ~12 of 16, gen4 ~25 of 32), for g4dn (gen3) and g5/g6/g6e (gen4).
NVLINK_GBS = {"v100": 300.0, "a100": 600.0, "h100": 900.0}
PCIE_GBS = {"t4": 12.0}
PCIE_GEN4_GBS = 25.0


def hbm_gbs(inst: Instance) -> float:
    """Memory bandwidth of one of the instance's GPUs."""
    if inst.gpu == "a100" and inst.gpu_memory_gb <= 40:
        return A100_40GB_HBM_GBS
    return HBM_GBS[inst.gpu]


def link_gbs(inst: Instance) -> float:
    """How fast one GPU can move data to the others in this instance."""
    if inst.interconnect == "nvlink":
        return NVLINK_GBS.get(inst.gpu, 300.0)
    return PCIE_GBS.get(inst.gpu, PCIE_GEN4_GBS)


@dataclass(frozen=True)
class Price:
    """One hourly price with where it came from: every dollar in a quote traces to one of these."""

    usd_per_h: float
    source: str  # live | catalog
    age_s: float  # seconds since it was read (catalog: since the snapshot)
    zone: str | None = None  # the zone of the cheapest spot price, when known
    basis: str = ""  # which price of several: "catalog zone median", "cheapest zone now"


def catalog_prices(now: datetime, types: list[str] | None = None) -> dict[tuple[str, str], Price]:
    """(instance type, market) -> the snapshot's price, aged from the snapshot date."""
    age = max(0.0, (now - SNAPSHOT_DATE).total_seconds())
    out: dict[tuple[str, str], Price] = {}
    for name in types if types is not None else INSTANCES:
        inst = INSTANCES[name]
        out[(name, "on-demand")] = Price(inst.on_demand_usd, "catalog", age)
        if inst.spot_usd is not None:
            out[(name, "spot")] = Price(inst.spot_usd, "catalog", age, basis=SPOT_BASIS)
    return out
