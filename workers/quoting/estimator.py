"""The estimator: a request, prices and a calibration in; a Quote out. Pure: no clock, no IO.

Every dollar in an option is hourly price × billed seconds (AWS: per second, 60 s minimum per
start) for the phases a run really has, plus the run's disk; spot adds its restarts: expected, and
at the 90th percentile (spot.py). Throughput comes from throughput.py; the rules of thumb for the
phases live in `Assumptions`, each with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from schemas.config import TeamConfig
from schemas.spec import Quote, QuoteOption, TrainRequest, Workload
from workers.quoting.calibration import Calibration
from workers.quoting.catalog import CATALOG_REGION, INSTANCES, Instance, Price
from workers.quoting.jobplan import JobWork, job_work, rl_seconds, stage_rows
from workers.quoting.spot import exposure, poisson_quantile, pool_risk, restart_cost
from workers.quoting.strategy import layout, no_fit_reason, plan_runs
from workers.quoting.throughput import Setup
from workers.quoting.workload import ADAPTER_FRACTION, Work, memory_need, work_of

__all__ = ["AWS_PER_SECOND", "HOURLY", "Assumptions", "Billing", "candidates", "estimate",
           "poisson_quantile", "reduced_request"]


@dataclass(frozen=True)
class Billing:
    """How a provider turns running seconds into billed seconds."""

    granularity_s: int
    minimum_s: int

    def billed_seconds(self, run_s: float) -> float:
        s = max(float(self.minimum_s), run_s)
        return math.ceil(s / self.granularity_s) * self.granularity_s


AWS_PER_SECOND = Billing(granularity_s=1, minimum_s=60)  # Linux on-demand and spot (EC2 docs)
HOURLY = Billing(granularity_s=3600, minimum_s=3600)  # RHEL/SLES, and how people often guess


@dataclass(frozen=True)
class Assumptions:
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
    billing: Billing = AWS_PER_SECOND


def _price_option(inst: Instance, market: str, price: Price, on_demand: Price | None, work: Work,
                  request: TrainRequest, cal: Calibration, a: Assumptions,
                  job: JobWork) -> QuoteOption:
    gpu = inst.gpu_info
    hourly = price.usd_per_h
    if market == "spot" and on_demand is not None:
        hourly = min(hourly, on_demand.usd_per_h)  # spot is never dearer than on-demand
    base = dict(
        instance_type=inst.type, gpu=gpu.name, gpu_count=inst.gpu_count,
        gpu_memory_gb=inst.gpu_memory_gb, market=market, region=request.region, zone=price.zone,
        hourly_usd=hourly, price_source=price.source, price_age_s=price.age_s,
        price_basis=price.basis,
        interruption_bucket=inst.interruption_bucket if market == "spot" else None,
    )

    def infeasible(reason: str, memory_gb: float = 0.0) -> QuoteOption:
        return QuoteOption(**base, hours=0.0, cost_usd=0.0, cost_p90_usd=0.0, feasible=False,
                           fits_budget=False, fits_deadline=False, reason=reason,
                           memory_gb=memory_gb)

    if request.precision == "bf16" and not gpu.bf16:
        return infeasible(f"{gpu.name} has no bf16; ask precision=fp16")
    adjust = cal.adjustment(inst.gpu, work.method, work.shape.params / 1e9)
    precision_factor = 1.0
    if request.precision == "fp32":
        # TF32 tensor cores run at half the BF16 rate; without them fp32 runs on CUDA cores at
        # about 1/8 of the FP16 tensor rate (V100: 15.7 vs 125 TFLOP/s).
        precision_factor = 0.5 if gpu.tf32 else 0.125
    factor = adjust.factor * precision_factor

    def setup(**kw) -> Setup:
        return Setup(gpu=inst.gpu, method=work.method, params=work.shape.params,
                     layers=work.shape.layers, hidden=work.shape.hidden, seq_len=work.seq_len,
                     interconnect=inst.interconnect, utilisation=adjust.utilisation, **kw)

    # Strategy and sweep layout (strategy.py): the fastest way that fits, all runs in waves.
    def layout_on(g: int):  # instances with the same GPUs share layouts (and it is fast)
        link = inst.interconnect if g > 1 else "none"
        k = ("layout", inst.gpu, inst.gpu_memory_gb, link, g, adjust.utilisation)
        if k not in job.plans:
            job.plans[k] = layout(work, inst, g, setup)
        return job.plans[k]

    key = ("plan", inst.type, adjust.utilisation, factor)  # spot and on-demand share it
    if key not in job.plans:
        job.plans[key] = plan_runs(job.run_tokens, inst, layout_on, factor,
                                   wave_overhead_s=_final_save_s(work, a))
    plan = job.plans[key]
    if plan is None:
        alone = next((lay for g in range(2, inst.gpu_count + 1) if (lay := layout_on(g))), None)
        reason, need_gb = no_fit_reason(work, inst, len(job.runs), alone)
        many = inst.gpu_count > 1
        return infeasible(reason, need_gb).model_copy(update={
            "strategy": "fsdp" if many else "single", "gpus_used": inst.gpu_count,
            "gpus_per_run": inst.gpu_count})
    lay = plan.layout
    checkpointing, micro, mem = lay.checkpointing, lay.micro_batch, lay.memory
    tokens_per_s = lay.tokens_per_s * factor * min(plan.groups, len(job.runs))

    weights_bytes = work.shape.params * 2.0
    train_s = plan.wall_s
    if work.method == "full":
        checkpoint_bytes = work.shape.params * 14.0  # bf16 weights + fp32 master and moments
    else:
        checkpoint_bytes = work.shape.params * ADAPTER_FRACTION * 16.0
    save_s = a.save_fixed_s + checkpoint_bytes / a.save_bytes_per_s
    seconds = {
        "setup": a.setup_s + weights_bytes / a.download_bytes_per_s,
        "data": a.data_prep_s + max(job.run_tokens) / a.tokenize_tokens_per_s,
        "train": train_s,
        # Runs of a wave save side by side: the saves of a wave take as long as one run's.
        "checkpoints": sum(math.floor(t / a.checkpoint_every_s) * save_s
                           for t in plan.train_s) / min(plan.groups, len(plan.train_s)),
        "final_save": _final_save_s(work, a) * plan.waves,
    }
    seconds.update(rl_seconds(job, work, inst, plan, factor))
    train_s = sum(seconds.get(k, 0.0) for k in ("train", "generation", "policy_update", "eval"))
    seconds["buffer"] = a.buffer_fraction * sum(seconds.values())
    run_s = sum(seconds.values())

    risk = None
    restart = None
    expected_n, p90_n, chance = 0.0, 0, 0.0
    if market == "spot":
        risk = pool_risk(inst.type, inst.interruption_bucket)
        restart = restart_cost(seconds["setup"], a.checkpoint_every_s, train_s,
                               checkpoint_bytes / a.download_bytes_per_s, risk.capacity_wait_s)
        ex = exposure(risk.per_hour, run_s, restart.billed_s)
        expected_n, p90_n, chance = ex.expected, ex.p90, ex.chance_any
        seconds["interruptions"] = expected_n * restart.billed_s
        seconds["capacity_wait"] = expected_n * restart.wait_s

    def dollars(billed_run_s: float, starts: float) -> float:
        # Each start is billed on its own (60 s minimum), so each restart adds its own minimum.
        # Waiting for capacity is not billed: nothing runs.
        billed = a.billing.billed_seconds(billed_run_s / starts) * starts
        disk_gb = a.disk_base_gb + weights_bytes / 1e9 * 3 + checkpoint_bytes / 1e9 * 3
        disk = disk_gb * a.disk_usd_per_gb_month * (billed_run_s / 3600.0) / a.hours_per_month
        return billed / 3600.0 * hourly + disk

    restart_s = restart.billed_s if restart else 0.0
    cost = dollars(run_s + expected_n * restart_s, 1.0 + expected_n)
    p90 = dollars(run_s + p90_n * restart_s, 1.0 + p90_n)
    expected_s = sum(seconds.values())
    hours = expected_s / 3600.0
    fits_deadline = request.deadline_s is None or expected_s <= request.deadline_s
    p90_usd = max(p90, cost)
    return QuoteOption(
        **base, hours=hours, cost_usd=cost, cost_p90_usd=p90_usd, feasible=True,
        fits_budget=cost <= request.budget_usd, fits_deadline=fits_deadline,
        phases={k: v / 3600.0 for k, v in seconds.items()}, tokens_per_s=tokens_per_s,
        strategy=lay.strategy, gpus_used=plan.nproc,
        gpus_per_run=lay.gpus, scaling=lay.scaling, waves=plan.waves,
        runs=[{"name": name, "gpus": lay.gpus, "hours": t / 3600.0,
               "gpu_hours": t * lay.gpus / 3600.0}
              for (name, _), t in zip(job.runs, plan.train_s, strict=True)] if len(job.runs) > 1
        else [],
        stages=stage_rows(seconds, cost, job, work, plan, request),
        calibration=adjust.source, gradient_checkpointing=checkpointing, memory_gb=mem.per_gpu_gb,
        micro_batch=micro, interruptions_per_h=risk.per_hour if risk else 0.0,
        interruption_source=risk.source if risk else "", expected_restarts=expected_n,
        restarts_p90=p90_n, interruption_chance=chance, fits_cap_p90=p90_usd <= request.cap_usd,
    )


def _final_save_s(work: Work, a: Assumptions) -> float:
    """Uploading the trained weights: the whole model for full fine-tuning, else the adapter."""
    size = work.shape.params * (2.0 if work.method == "full" else ADAPTER_FRACTION * 16.0)
    return a.save_fixed_s + size / a.save_bytes_per_s


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
    job = job_work(request, config, work)
    options: list[QuoteOption] = []
    for inst, market in candidates(request):
        price = prices.get((inst.type, market))
        if price is None:
            if market == "spot":
                notes.append(f"no spot price for {inst.type}: on-demand only")
            continue
        options.append(_price_option(inst, market, price, prices.get((inst.type, "on-demand")),
                                     work, request, calibration, a, job))
    options.sort(key=lambda o: (not o.feasible, o.cost_usd if o.feasible else o.hourly_usd,
                                o.hours, o.instance_type, o.market))
    feasible = [o for o in options if o.feasible]
    fitting = [o for o in feasible if o.fits_budget and o.fits_deadline]
    # The cheapest option on expected cost, unless its P90 would run into the cap while another
    # that fits has a P90 within it: a quote that hits the cap one run in ten is not a bargain.
    recommended = next((o for o in fitting if o.fits_cap_p90), None)
    if recommended is not None and fitting and recommended is not fitting[0]:
        cheapest = fitting[0]
        notes.append(
            f"recommended {recommended.instance_type} {recommended.market} over the cheaper "
            f"{cheapest.instance_type} {cheapest.market}: its P90 (${cheapest.cost_p90_usd:,.2f},"
            f" {cheapest.restarts_p90} restart{'s' if cheapest.restarts_p90 != 1 else ''}) "
            f"would exceed the ${request.cap_usd:,.2f} cap")
    elif recommended is None and fitting:
        recommended = fitting[0]
        notes.append(f"every option that fits the budget has a P90 over the ${request.cap_usd:,.2f}"
                     f" cap (${recommended.cost_p90_usd:,.2f} for the recommended one): about one "
                     "run in ten would stop at the cap")
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

    if work.samples_assumed and "sft" in job.stages:
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
    tokens = sum(job.run_tokens) + job.rl.update_tokens  # every run's SFT and RL training
    workload = Workload(
        params=work.shape.params, tokens=tokens, steps=work.steps, method=work.method,
        flops=work.flops_per_token(ckpt) * tokens, flops_per_token=work.flops_per_token(ckpt),
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
        **{k: tighter(getattr(request, k), getattr(preset, k)) for k in (
            "num_tasks", "n_samples", "top_k", "rounds", "eval_samples")},
    })


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
