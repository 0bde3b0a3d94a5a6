"""The estimator: a request, prices and a calibration in; a Quote out. Pure: no clock, no IO.

Every dollar in an option is hourly price × billed seconds (AWS: per second, 60 s minimum per
start) for the phases a run really has, plus the run's disk; spot adds the expected cost of its
interruptions. The rules of thumb live in `Assumptions`, each with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.config import TeamConfig
from schemas.spec import Quote, QuoteOption, TrainRequest, Workload
from workers.quoting.calibration import Calibration
from workers.quoting.catalog import CATALOG_REGION, INSTANCES, Instance, Price
from workers.quoting.workload import ADAPTER_FRACTION, Work, memory_need, work_of


@dataclass(frozen=True)
class Billing:
    """How a provider turns running seconds into billed seconds."""

    granularity_s: int
    minimum_s: int

    def billed_seconds(self, run_s: float) -> float:
        s = max(float(self.minimum_s), run_s)
        return math.ceil(s / self.granularity_s) * self.granularity_s


AWS_PER_SECOND = Billing(granularity_s=1, minimum_s=60)  # Linux on-demand and spot (FACTS.md)
HOURLY = Billing(granularity_s=3600, minimum_s=3600)  # RHEL/SLES, and how people often guess


@dataclass(frozen=True)
class Assumptions:
    # Data-parallel efficiency beyond one GPU: 7B LoRA on 8×A10G scaled at ~92% (h2o-llmstudio).
    multi_gpu_scaling: float = 0.92
    # Boot, image pull, driver start: what a GPU instance takes before our code runs.
    setup_s: float = 360.0
    download_bytes_per_s: float = 200e6  # model weights from the Hub or S3
    data_prep_s: float = 60.0
    tokenize_tokens_per_s: float = 2e6
    checkpoint_every_s: float = 600.0  # JobSpec.checkpoint_every_s
    save_bytes_per_s: float = 200e6  # checkpoint upload to S3
    save_fixed_s: float = 10.0
    buffer_fraction: float = 0.10  # what runs always need that nobody planned for
    # gp3 in us-east-1: $0.08 per GB-month (AWS EBS pricing), billed per second, prorated.
    disk_usd_per_gb_month: float = 0.08
    disk_base_gb: float = 100.0  # OS, image, caches
    hours_per_month: float = 730.0
    # The Spot Instance Advisor's bucket is a monthly average over all instances; GPU pools lose
    # instances far more often than that, so we read each bucket's upper figure as the chance of
    # an interruption per 24 hours of running: deliberately pessimistic.
    interruption_per_day: Mapping[str, float] = field(
        default_factory=lambda: {"<5%": 0.05, "5-10%": 0.10, "10-15%": 0.15, "15-20%": 0.20,
                                 ">20%": 0.30}
    )
    billing: Billing = AWS_PER_SECOND


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


def _gb(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def _params(n: float) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


_METHOD_WORDS = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA"}


def _price_option(inst: Instance, market: str, price: Price, on_demand: Price | None, work: Work,
                  request: TrainRequest, cal: Calibration, a: Assumptions) -> QuoteOption:
    gpu = inst.gpu_info
    hourly = price.usd_per_h
    if market == "spot" and on_demand is not None:
        hourly = min(hourly, on_demand.usd_per_h)  # spot is never dearer than on-demand
    base = dict(
        instance_type=inst.type, gpu=gpu.name, gpu_count=inst.gpu_count,
        gpu_memory_gb=inst.gpu_memory_gb, market=market, region=request.region, zone=price.zone,
        hourly_usd=hourly, price_source=price.source, price_age_s=price.age_s,
        interruption_bucket=inst.interruption_bucket if market == "spot" else None,
    )

    def infeasible(reason: str, memory_gb: float = 0.0) -> QuoteOption:
        return QuoteOption(**base, hours=0.0, cost_usd=0.0, cost_p90_usd=0.0, feasible=False,
                           fits_budget=False, fits_deadline=False, reason=reason,
                           memory_gb=memory_gb)

    if request.precision == "bf16" and not gpu.bf16:
        return infeasible(f"{gpu.name} has no bf16; ask precision=fp16")
    checkpointing = False
    mem = memory_need(work, inst.gpu_count, checkpointing=False)
    if mem.per_gpu_gb > inst.gpu_memory_gb:
        checkpointing = True  # recompute activations to fit: one more forward per step
        mem = memory_need(work, inst.gpu_count, checkpointing=True)
    if mem.per_gpu_gb > inst.gpu_memory_gb:
        what = f"{_METHOD_WORDS[work.method]} of {_params(work.shape.params)} params"
        if mem.sharded:
            need = f"needs ~{_gb(mem.total_gb)} GB, ~{_gb(mem.per_gpu_gb)} GB per GPU sharded"
        elif inst.gpu_count > 1:
            need = f"needs ~{_gb(mem.per_gpu_gb)} GB on each GPU (not sharded)"
        else:
            need = f"needs ~{_gb(mem.per_gpu_gb)} GB"
        each = " each" if inst.gpu_count > 1 else ""
        return infeasible(f"{what} {need}; {inst.label} has {inst.gpu_memory_gb:.0f} GB{each}",
                          mem.per_gpu_gb)

    util, cal_source = cal.utilisation(inst.gpu, work.method)
    precision_factor = 1.0
    if request.precision == "fp32":
        # TF32 tensor cores run at half the BF16 rate; without them fp32 runs on CUDA cores at
        # about 1/8 of the FP16 tensor rate (V100: 15.7 vs 125 TFLOP/s).
        precision_factor = 0.5 if gpu.tf32 else 0.125
    scaling = a.multi_gpu_scaling if inst.gpu_count > 1 else 1.0
    flops_per_token = work.flops_per_token(checkpointing)
    tokens_per_s = (inst.gpu_count * gpu.peak_tflops * 1e12 * util * scaling * precision_factor
                    / flops_per_token)

    weights_bytes = work.shape.params * 2.0
    train_s = work.tokens / tokens_per_s
    if work.method == "full":
        checkpoint_bytes = work.shape.params * 14.0  # bf16 weights + fp32 master and moments
    else:
        checkpoint_bytes = work.shape.params * ADAPTER_FRACTION * 16.0
    save_s = a.save_fixed_s + checkpoint_bytes / a.save_bytes_per_s
    seconds = {
        "setup": a.setup_s + weights_bytes / a.download_bytes_per_s,
        "data": a.data_prep_s + work.tokens / a.tokenize_tokens_per_s,
        "train": train_s,
        "checkpoints": math.floor(train_s / a.checkpoint_every_s) * save_s,
        "final_save": a.save_fixed_s + (
            weights_bytes if work.method == "full" else checkpoint_bytes) / a.save_bytes_per_s,
    }
    seconds["buffer"] = a.buffer_fraction * sum(seconds.values())
    run_s = sum(seconds.values())

    expected_n, p90_n, loss_s = 0.0, 0, 0.0
    if market == "spot":
        p_day = a.interruption_per_day.get(inst.interruption_bucket, 0.30)
        rate_per_s = -math.log(1.0 - p_day) / 86400.0
        expected_n = rate_per_s * run_s
        p90_n = poisson_quantile(expected_n, 0.9)
        # Each interruption loses half a checkpoint interval of work on average, and pays setup
        # again plus reloading the last checkpoint.
        loss_s = (min(a.checkpoint_every_s, train_s) / 2.0 + seconds["setup"]
                  + checkpoint_bytes / a.download_bytes_per_s)
        seconds["interruptions"] = expected_n * loss_s

    def dollars(total_run_s: float, starts: float) -> float:
        # Each start is billed on its own (60 s minimum), so each restart adds its own minimum.
        billed = a.billing.billed_seconds(total_run_s / starts) * starts
        disk_gb = a.disk_base_gb + weights_bytes / 1e9 * 3 + checkpoint_bytes / 1e9 * 3
        disk = disk_gb * a.disk_usd_per_gb_month * (total_run_s / 3600.0) / a.hours_per_month
        return billed / 3600.0 * hourly + disk

    expected_s = run_s + expected_n * loss_s
    cost = dollars(expected_s, 1.0 + expected_n)
    p90 = dollars(run_s + p90_n * loss_s, 1.0 + p90_n)
    hours = expected_s / 3600.0
    fits_deadline = request.deadline_s is None or expected_s <= request.deadline_s
    return QuoteOption(
        **base, hours=hours, cost_usd=cost, cost_p90_usd=max(p90, cost), feasible=True,
        fits_budget=cost <= request.budget_usd, fits_deadline=fits_deadline,
        phases={k: v / 3600.0 for k, v in seconds.items()}, tokens_per_s=tokens_per_s,
        calibration=cal_source, gradient_checkpointing=checkpointing, memory_gb=mem.per_gpu_gb,
    )



def candidates(request: TrainRequest) -> list[tuple[Instance, str]]:
    """The (instance, market) pairs the request allows: gpu, instance and spot filters."""
    markets = {"yes": ("spot",), "no": ("on-demand",), "auto": ("spot", "on-demand")}[request.spot]
    out = []
    for inst in INSTANCES.values():
        if request.instance and inst.type != request.instance:
            continue
        if request.gpu and inst.gpu != request.gpu:
            continue
        out.extend((inst, m) for m in markets)
    return out


def estimate(request: TrainRequest, config: TeamConfig, prices: Mapping[tuple[str, str], Price],
             calibration: Calibration, *, notes: list[str] | None = None,
             assumptions: Assumptions | None = None, _alternative: bool = True) -> Quote:
    a = assumptions or Assumptions()
    notes = list(notes or [])
    work = work_of(request, config)
    options: list[QuoteOption] = []
    for inst, market in candidates(request):
        price = prices.get((inst.type, market))
        if price is None:
            if market == "spot":
                notes.append(f"no spot price for {inst.type}: on-demand only")
            continue
        options.append(_price_option(inst, market, price, prices.get((inst.type, "on-demand")),
                                     work, request, calibration, a))
    options.sort(key=lambda o: (not o.feasible, o.cost_usd if o.feasible else o.hourly_usd,
                                o.hours, o.instance_type, o.market))
    feasible = [o for o in options if o.feasible]
    recommended = next((o for o in feasible if o.fits_budget and o.fits_deadline), None)
    # Over budget: by how much the cheapest option that can run (within the deadline, when there
    # is one) misses.
    in_time = [o for o in feasible if o.fits_deadline] or feasible
    over = 0.0
    if recommended is None and in_time:
        over = max(0.0, in_time[0].cost_usd - request.budget_usd)
    reduced_cost = None
    if recommended is None and _alternative and request.preset != "reduced" \
            and "reduced" in config.presets:
        alt = estimate(reduced_request(request, config), config, prices, calibration,
                       assumptions=a, _alternative=False)
        alt_feasible = [o for o in alt.options if o.feasible]
        reduced_cost = alt_feasible[0].cost_usd if alt_feasible else None

    if work.samples_assumed:
        notes.append(f"samples unknown: quoted for {work.tokens / work.seq_len / request.epochs:,.0f}"
                     " samples; say samples=N for a tighter quote")
    if not options:
        notes.append("no instance matches the gpu/instance/spot filters")
    elif not feasible:
        notes.append("no option can run this request: see each option's reason")
    if request.region != CATALOG_REGION and any(o.price_source == "catalog" for o in options):
        notes.append(f"catalog prices are {CATALOG_REGION}'s; {request.region} may differ")

    chosen = recommended or (in_time[0] if in_time else None)
    ckpt = bool(chosen and chosen.gradient_checkpointing)
    workload = Workload(
        params=work.shape.params, tokens=work.tokens, steps=work.steps, method=work.method,
        flops=work.flops_per_token(ckpt) * work.tokens, flops_per_token=work.flops_per_token(ckpt),
        gradient_checkpointing=ckpt, memory_gb=memory_need(work, 1, ckpt).total_gb,
    )
    return Quote(request=request, workload=workload, options=options, recommended=recommended,
                 over_budget_usd=over, reduced_cost_usd=reduced_cost, notes=_unique(notes))


def reduced_request(request: TrainRequest, config: TeamConfig) -> TrainRequest:
    """The request under the `reduced` preset: each of its limits applied where it is tighter."""
    preset = config.presets["reduced"]

    def tighter(mine: int | None, theirs: int | None) -> int | None:
        if theirs is None:
            return mine
        return theirs if mine is None else min(mine, theirs)

    return request.model_copy(update={
        "preset": "reduced",
        "samples": tighter(request.samples, preset.samples),
        "epochs": tighter(request.epochs, preset.epochs),
        "max_steps": tighter(request.max_steps, preset.max_steps),
        "seq_len": tighter(request.seq_len, preset.seq_len),
    })


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
