"""`trainops quote "TEXT" [--json]`: the quote in a table a person reads at a glance, or JSON.

Imports stay light (pydantic and the standard library): the whole command must answer in well
under a second, and boto3 loads only when live prices are wanted.
"""

from __future__ import annotations

import json

from schemas.spec import Quote, QuoteOption
from workers.quoting.breakdown import code_lines, layout_line, runs_table, stage_table

COLUMNS = ("instance", "GPUs", "market", "$/h", "hours", "cost", "P90", "fits", "why not")


def _money(x: float) -> str:
    return f"${x:,.2f}"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds // 86400:.0f}d"


def _fits(o: QuoteOption) -> str:
    if not o.feasible:
        return "no"
    if not o.fits_budget:
        return "over"
    return "yes" if o.fits_deadline else "late"


def _why(o: QuoteOption, budget: float) -> str:
    if not o.feasible:
        return o.reason or ""
    if not o.fits_budget:
        return f"{_money(o.cost_usd - budget)} over budget"
    if not o.fits_deadline:
        return "misses the deadline"
    return "fits with gradient checkpointing" if o.gradient_checkpointing else ""


def _row(o: QuoteOption, budget: float) -> tuple[str, ...]:
    feasible = o.feasible
    return (
        o.instance_type, _gpus(o), o.market, f"{o.hourly_usd:.3f}",
        f"{o.hours:.2f}" if feasible else "-", _money(o.cost_usd) if feasible else "-",
        _money(o.cost_p90_usd) if feasible else "-", _fits(o), _why(o, budget),
    )


def _where(o: QuoteOption) -> str:
    return "this machine (local)" if o.market == "local" else f"{o.instance_type} {o.market}"


def _gpus(o: QuoteOption) -> str:
    return "CPU only" if o.gpu_count == 0 else f"{o.gpu_count}×{o.gpu}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    right = {3, 4, 5, 6}  # numbers line up on the right
    lines = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def render_quote(quote: Quote) -> str:
    """The quote as plain text: request, options table, recommendation, phases, notes."""
    r, w = quote.request, quote.workload
    lines = [
        f"Quote for: {r.text or r.stage}",
        f"  {r.stage} {r.preset} · {r.model} · {w.method} · {w.tokens:,.0f} tokens, "
        f"{w.steps:,} steps · {w.flops:.2e} FLOPs · budget {_money(r.budget_usd)}, "
        f"cap {_money(r.cap_usd)}",
        "",
    ]
    rows = [COLUMNS] + [_row(o, r.budget_usd) for o in quote.options]
    lines += _table(rows) if quote.options else ["(no options)"]
    lines.append("")
    rec = quote.recommended
    if rec is not None:
        where = f" in {rec.zone}" if rec.zone else ""
        lines.append(
            f"Recommended: {_where(rec)}{where}, {_gpus(rec)} — "
            f"{_money(rec.cost_usd)} expected (P90 {_money(rec.cost_p90_usd)}), "
            f"{rec.hours:.2f} h at ${rec.hourly_usd:.3f}/h ({rec.price_source}, "
            f"{_age(rec.price_age_s)} old), {rec.tokens_per_s:,.0f} tokens/s "
            f"[{rec.calibration}]")
        phases = ", ".join(f"{k} {v * 60:.1f}m" for k, v in rec.phases.items())
        lines.append(f"Phases: {phases}")
        lines += _plan_lines(rec)
    else:
        feasible = [o for o in quote.options if o.feasible]
        if feasible:
            lines.append(f"Nothing fits the budget: the cheapest option is "
                         f"{_money(quote.over_budget_usd)} over.")
            if quote.reduced_cost_usd is not None:
                lines.append(f"The reduced preset would cost about "
                             f"{_money(quote.reduced_cost_usd)}.")
        else:
            lines.append("No option can run this request.")
    code = code_lines(quote)
    if code:
        lines.append("Runs your own code (an approver must approve, even within budget):")
        lines += [f"  {c}" for c in code]
    lines += [f"Note: {n}" for n in quote.notes]
    return "\n".join(lines)


def _plan_lines(o: QuoteOption) -> list[str]:
    """Multi-GPU layout, sweep runs and the per-stage breakdown (issues #11, #12)."""
    lines = [layout_line(o)] if layout_line(o) else []
    for table in (runs_table(o), stage_table(o)):
        lines += [""] + [f"  {row}" for row in table] if table else []
    return lines


def run(args) -> int:
    from bot.grammar.commands import parse_request
    from schemas.config import load_config
    from schemas.settings import get_settings
    from workers.quoting import make_quote

    settings = get_settings()
    config = load_config(settings.config_path)
    request = parse_request(args.text, config)
    quote = make_quote(request, config, settings=settings)
    if getattr(args, "json", False):
        print(json.dumps(quote.model_dump(mode="json"), indent=2))
    else:
        print(render_quote(quote))
    return 0
