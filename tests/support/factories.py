"""Quotes built straight from schemas.spec, so the runner's tests do not depend on the
estimator's figures (workers/quoting has its own tests)."""

from __future__ import annotations

from schemas.spec import Quote, QuoteOption, TrainRequest, Workload


def option(instance_type: str = "g5.xlarge", market: str = "spot", cost: float = 4.0,
           hourly: float = 0.40, zone: str | None = "us-east-1a", feasible: bool = True,
           budget: float = 100.0) -> QuoteOption:
    return QuoteOption(
        instance_type=instance_type, gpu="A10G", gpu_count=1, gpu_memory_gb=24, market=market,
        region="us-east-1", zone=zone, hourly_usd=hourly, price_source="catalog",
        price_age_s=0, hours=cost / hourly, cost_usd=cost, cost_p90_usd=cost * 1.2,
        feasible=feasible, fits_budget=cost <= budget,
    )


def quote(budget: float = 100.0, cap: float | None = None, options: list[QuoteOption] | None = None,
          model: str = "tiny", text: str = "sft smoke", steps: int = 5,
          samples: int | None = 16) -> Quote:
    request = TrainRequest(text=text, preset="smoke", budget_usd=budget, cap_usd=cap or budget,
                           model=model, samples=samples, max_steps=steps, seq_len=64,
                           batch_size=2)
    options = options if options is not None else [
        option("g5.xlarge", "spot", 4.0, 0.40, "us-east-1a", budget=budget),
        option("g6.xlarge", "spot", 5.0, 0.42, "us-east-1b", budget=budget),
        option("g5.xlarge", "on-demand", 10.0, 1.006, None, budget=budget),
    ]
    feasible = [o for o in options if o.feasible]
    fitting = [o for o in feasible if o.cost_usd <= budget]
    over = 0.0 if fitting or not feasible else min(o.cost_usd for o in feasible) - budget
    return Quote(
        request=request,
        workload=Workload(params=5e5, tokens=1e4, steps=5, method="lora", flops=1e12,
                          flops_per_token=4 * 5e5),
        options=options, recommended=fitting[0] if fitting else None, over_budget_usd=over,
    )
