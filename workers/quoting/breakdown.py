"""A quote's extra lines for multi-GPU layouts, sweeps, stages and user code (issues #11, #12),
as plain text both the CLI and Slack show. Pure."""

from __future__ import annotations

from schemas.spec import Quote, QuoteOption
from workers.rules.budget import user_code

STRATEGY_WORDS = {"single": "one GPU", "ddp": "DDP (model on every GPU)",
                  "fsdp": "FSDP (model sharded over the GPUs)"}


def _h(hours: float) -> str:
    minutes = hours * 60
    return f"{minutes:.0f}m" if minutes < 120 else f"{hours:.1f}h"


def layout_line(o: QuoteOption) -> str:
    """How the option uses its GPUs: `8×A100: FSDP on 8 GPUs, 95% per-GPU scaling`."""
    if not o.feasible or o.gpu_count == 0:  # a CPU-only local machine has no GPU layout
        return ""
    how = STRATEGY_WORDS.get(o.strategy, o.strategy)
    line = f"GPUs: {how}, {o.gpus_used} of {o.gpu_count} busy"
    if o.gpus_per_run > 1:
        line += f", {o.scaling:.0%} per-GPU scaling"
    if o.runs:
        line += (f"; {len(o.runs)} runs on {o.gpus_per_run} GPU{'s' if o.gpus_per_run > 1 else ''}"
                 f" each, {o.waves} wave{'s' if o.waves > 1 else ''}")
    return line


def stage_table(o: QuoteOption) -> list[str]:
    """The time breakdown: stage, hours, cost, what it is."""
    if not o.stages:
        return []
    width = max(len(r["stage"]) for r in o.stages)
    out = [f"{'stage':<{width}}  {'time':>6}  {'cost':>9}  what"]
    for r in o.stages:
        out.append(f"{r['stage']:<{width}}  {_h(r['hours']):>6}  ${r['cost_usd']:>8,.2f}  "
                   f"{r['what']}")
    out.append(f"{'total':<{width}}  {_h(o.hours):>6}  ${o.cost_usd:>8,.2f}")
    return out


def runs_table(o: QuoteOption) -> list[str]:
    """A sweep's runs and the GPU-time each takes (the quote prices their sum)."""
    if not o.runs:
        return []
    out = [f"{'run':<24}  {'GPUs':>4}  {'time':>6}  GPU-hours"]
    out += [f"{r['name'][:24]:<24}  {r['gpus']:>4}  {_h(r['hours']):>6}  {r['gpu_hours']:.2f}"
            for r in o.runs]
    return out


def code_lines(quote: Quote) -> list[str]:
    """User code the job will run, verbatim: why an approver must approve."""
    r = quote.request
    return user_code(r.command, r.reward)
