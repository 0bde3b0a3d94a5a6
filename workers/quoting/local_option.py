"""The local provider as a quote option: this machine at its own rate, its own GPUs (or none),
its own measured speed and setup time (issue 13).

What this machine is and how fast it trains is a `LocalProfile` kept in the store
(`local/profile.json`): the GPUs detected once by the worker (or set in trainops.toml `[local]`),
and the last few measurements, from the calibration run (workers/providers/local_calibration.py)
and from finished local jobs. The quote reads that file; it never imports torch.

Pricing rule, the same as the meter's (workers/rules/billing.py): TRAINOPS_LOCAL_PRICE_PER_HOUR
per second, 60 s at least per start. Time rule: the measured setup (launch to the first training
step), the request's steps at the measured seconds per step, the measured finish (last step to
the moment the meter stops). No spot risk: nobody takes this machine back. docs/local-quotes.md
says where each figure comes from and what is not modelled.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from schemas.config import TeamConfig
from schemas.spec import Quote, QuoteOption, TrainRequest
from workers.quoting.estimator import AWS_PER_SECOND, Billing
from workers.quoting.jobplan import stages_of
from workers.quoting.local_profile import (  # noqa: F401 - the profile's old home re-exports it
    KEEP,
    PROFILE_KEY,
    SINGLE_MEASUREMENT_P90,
    LocalProfile,
    Measurement,
    read_profile,
    write_profile,
)
from workers.quoting.local_stages import staged_option
from workers.quoting.workload import Work, work_of

INSTANCE = "local"


@dataclass(frozen=True)
class Speed:
    step_s: float  # expected seconds per step for this request's shape
    slow_step_s: float  # the P90 figure
    setup_s: float
    slow_setup_s: float
    finish_s: float
    slow_finish_s: float
    source: str


def _same_shape(m: Measurement, request: TrainRequest) -> bool:
    return (m.model, m.method, m.precision, m.seq_len, m.batch_size) == (
        request.model, request.method, request.precision, request.seq_len, request.batch_size)


def speed(profile: LocalProfile, request: TrainRequest, work: Work, monitor_s: float) -> Speed:
    """Seconds per step from the measurements of this very shape when there are any; else from
    every measurement's FLOP rate, scaled by this request's FLOPs per step."""
    ms = profile.measurements
    same = [m for m in ms if _same_shape(m, request)]
    if same:
        steps = [m.step_s for m in same]
        source = f"measured on this machine ({_runs(len(same))} of this shape)"
    else:
        flops_per_step = work.flops_per_token(False) * request.batch_size * request.seq_len
        steps = [flops_per_step / m.flops_per_s for m in ms]
        source = (f"measured on this machine ({_runs(len(ms))} of other shapes, scaled by FLOPs "
                  "per step)")
    # The monitor notices an ended attempt on its next tick: half an interval on average, a
    # whole one at worst. Measurements made through the monitor already include it.
    # Setup and finish: finished jobs' own when there are any. A calibration run is the first
    # on a machine and pays first-time costs (tokenizing the data into the cache) jobs do not.
    ends = [m for m in ms if m.through_monitor] or ms
    finishes = [m.finish_s + (0 if m.through_monitor else monitor_s / 2) for m in ends]
    slow_finishes = [m.finish_s + (0 if m.through_monitor else monitor_s) for m in ends]
    setups = [m.setup_s for m in ends]
    margin = 1 + SINGLE_MEASUREMENT_P90 if len(steps) < 2 else 1.0
    return Speed(step_s=statistics.median(steps), slow_step_s=max(steps) * margin,
                 setup_s=statistics.median(setups), slow_setup_s=max(setups) * margin,
                 finish_s=statistics.median(finishes), slow_finish_s=max(slow_finishes) * margin,
                 source=source)


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def local_option(request: TrainRequest, config: TeamConfig, profile: LocalProfile | None,
                 hourly_usd: float, *, monitor_s: float = 30.0,
                 billing: Billing = AWS_PER_SECOND) -> QuoteOption:
    """This machine priced for the request, or an infeasible option with the reason."""
    gpus = profile.gpus if profile else (config.local.gpus or 0)
    gpu = profile.gpu if profile else (config.local.gpu or "cpu")
    base = dict(instance_type=INSTANCE, gpu=gpu, gpu_count=gpus, gpu_memory_gb=0.0,
                market="local", region="this machine", hourly_usd=hourly_usd,
                price_source="local", price_age_s=0.0,
                price_basis="TRAINOPS_LOCAL_PRICE_PER_HOUR, per second, 60 s minimum per start")

    def refuse(reason: str) -> QuoteOption:
        return QuoteOption(**base, hours=0.0, cost_usd=0.0, cost_p90_usd=0.0, feasible=False,
                           fits_budget=False, fits_deadline=False, reason=reason)

    if request.instance and request.instance != INSTANCE:
        return refuse(f"you asked for instance={request.instance}; this worker runs jobs on this "
                      "machine (TRAINOPS_PROVIDER=local)")
    if request.gpu and request.gpu != gpu:
        return refuse(f"you asked for gpu={request.gpu}; this machine has "
                      f"{'no GPU' if gpus == 0 else gpu}")
    if request.method == "qlora" and gpus == 0:
        return refuse("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); this machine has none — "
                      "use peft=lora, or a GPU option")
    if request.precision == "fp16" and gpus == 0:
        return refuse("fp16 training needs a GPU; on this CPU-only machine use precision=fp32 "
                      "or bf16")
    if profile is None or not profile.measurements:
        return refuse("this machine's speed is not measured yet: `trainops calibrate` measures "
                      "it in about a minute (`trainops train` and the Slack worker do on first use)")
    work = work_of(request, config)
    s = speed(profile, request, work, monitor_s)
    if request.sweep_key or stages_of(request) != ["sft"]:
        if "eval" in stages_of(request) and not request.eval_samples:
            return refuse("the eval stage scores held-out rows: say eval_samples=N (e.g. "
                          "eval_samples=32) so that many rows are kept out of training")
        if not profile.measures_stages:
            return refuse("this machine's generation speed and stage starts are not measured "
                          "yet: `trainops calibrate` measures them")
        return staged_option(request, config, profile, s, base, hourly_usd, billing)
    phases_s = {"setup": s.setup_s, "train": work.steps * s.step_s, "finish": s.finish_s}
    slow_s = s.slow_setup_s + work.steps * s.slow_step_s + s.slow_finish_s
    run_s = sum(phases_s.values())
    cost = billing.billed_seconds(run_s) / 3600.0 * hourly_usd
    p90 = max(cost, billing.billed_seconds(slow_s) / 3600.0 * hourly_usd)
    fits_deadline = request.deadline_s is None or run_s <= request.deadline_s
    return QuoteOption(
        **base, hours=run_s / 3600.0, cost_usd=cost, cost_p90_usd=p90, feasible=True,
        fits_budget=cost <= request.budget_usd, fits_deadline=fits_deadline,
        phases={k: v / 3600.0 for k, v in phases_s.items()},
        tokens_per_s=request.batch_size * request.seq_len / s.step_s, calibration=s.source,
        micro_batch=0, fits_cap_p90=p90 <= request.cap_usd)


def for_this_machine(quote: Quote, config: TeamConfig, profile: LocalProfile | None,
                     hourly_usd: float, *, monitor_s: float = 30.0) -> Quote:
    """The quote for a worker whose provider is this machine: the local option is the only
    option (what approval rules, the launch and recovery read), and the cheapest AWS option is
    named in a note for comparison."""
    request = quote.request
    mine = local_option(request, config, profile, hourly_usd, monitor_s=monitor_s)
    notes = [n for n in quote.notes if not n.startswith("recommended ")
             and not n.startswith("every option that fits")]
    aws = [o for o in quote.options if o.feasible]
    if aws:
        best = min(aws, key=lambda o: o.cost_usd)
        prices = {"live": "live prices", "catalog": "catalog prices"}.get(best.price_source,
                                                                            "AWS prices")
        notes.append(f"this worker runs jobs on this machine (TRAINOPS_PROVIDER=local); for "
                     f"comparison, at {prices} the cheapest AWS option is {best.instance_type} "
                     f"{best.market} at ${best.cost_usd:,.2f} expected (TRAINOPS_PROVIDER=aws "
                     "runs there)")
    recommended = mine if mine.feasible and mine.fits_budget and mine.fits_deadline else None
    if recommended is not None and not mine.fits_cap_p90:
        notes.append(f"this machine's P90 (${mine.cost_p90_usd:,.2f}) would exceed the "
                     f"${request.cap_usd:,.2f} cap: about one run in ten would stop at the cap")
    over = max(0.0, mine.cost_usd - request.budget_usd) if mine.feasible and not recommended \
        else 0.0
    reduced = None
    if mine.feasible and recommended is None and "reduced" in config.presets \
            and request.preset != "reduced":
        from workers.quoting.estimator import reduced_request

        alt = local_option(reduced_request(request, config), config, profile, hourly_usd,
                           monitor_s=monitor_s)
        reduced = alt.cost_usd if alt.feasible else None
    return quote.model_copy(update={
        "options": [mine], "recommended": recommended, "over_budget_usd": over,
        "reduced_cost_usd": reduced,
        "notes": list(dict.fromkeys(notes))})
