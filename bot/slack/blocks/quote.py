"""Block Kit builders: pure functions from quotes and jobs to Slack message payloads.

Nothing here talks to Slack or the database, so every message can be tested as a value. Slack's
limits are respected by construction: text is cut to fit (a cut code block keeps its closing
fence), lists are bounded, a message never has more than 50 blocks, and a button's value is the
job id alone (the server loads everything else, so a forged value can name a job, never a price).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from schemas.spec import Quote, QuoteOption

SECTION_TEXT_MAX = 3000  # section and mrkdwn text objects
CONTEXT_TEXT_MAX = 2000  # a context element
FALLBACK_TEXT_MAX = 3000  # the notification text of a message (Slack allows more; keep it short)
BUTTON_VALUE_MAX = 2000
BUTTON_TEXT_MAX = 75
MAX_BLOCKS = 50
TOP_OPTIONS = 5  # rows of the options table

ACTIONS = {"approve": "Approve", "approve_on_demand": "Approve on-demand", "reject": "Reject"}
Block = dict[str, Any]


# -- small pieces -------------------------------------------------------------------------------

def escape(text: str) -> str:
    """Slack's three control characters in text from people or errors (a `<...>` would
    otherwise become a link or a mention)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """`text` shortened to `limit` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code_block(lines: Iterable[str], limit: int = SECTION_TEXT_MAX) -> str:
    """Lines in a ``` fence, cut on a line boundary so the fence always closes."""
    body, budget = [], limit - len("```\n\n```") - len("…")
    for line in lines:
        if len(line) + 1 > budget:
            body.append("…")
            break
        body.append(line)
        budget -= len(line) + 1
    return "```\n" + "\n".join(body) + "\n```"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_TEXT_MAX)}}


def context(*texts: str) -> Block:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": cut(t, CONTEXT_TEXT_MAX)} for t in texts[:10]],
    }


def button(action_id: str, job_id: str, style: str | None = None) -> Block:
    if len(job_id) > BUTTON_VALUE_MAX:
        raise ValueError("a job id longer than a button value")
    out: Block = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": cut(ACTIONS[action_id], BUTTON_TEXT_MAX)},
        "value": job_id,
    }
    if style:
        out["style"] = style
    return out


def fit(blocks: list[Block]) -> list[Block]:
    """At most MAX_BLOCKS blocks; an actions block at the end survives the cut."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    tail = [b for b in blocks[-1:] if b["type"] == "actions"]
    keep = MAX_BLOCKS - 1 - len(tail)
    return [*blocks[:keep], context(f"…{len(blocks) - keep - len(tail)} more not shown"), *tail]


def money(usd: float | None) -> str:
    return "—" if usd is None else f"${usd:,.2f}"


def age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def when(at: datetime | None) -> str:
    """A time every reader sees in their own zone (Slack's date token), with a UTC fallback."""
    if at is None:
        return "—"
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    fallback = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def option_name(o: QuoteOption) -> str:
    if o.market == "local":  # issue 13: the worker's own machine
        return "this machine (" + ("CPU only" if o.gpu_count == 0 else f"{o.gpu_count}× {o.gpu}") + ")"
    return f"{o.instance_type} {o.market} ({o.gpu_count}× {o.gpu})"


# -- quotes -------------------------------------------------------------------------------------

def approve_target(quote: Quote) -> QuoteOption | None:
    """What Approve launches: the recommendation, else the cheapest feasible option (over budget)."""
    if quote.recommended is not None:
        return quote.recommended
    return next((o for o in quote.options if o.feasible), None)


def approval_actions(quote: Quote) -> list[str]:
    """The buttons a quote gets. 'Approve on-demand' appears when spot is not what is recommended:
    as the only approval when the recommendation itself is on-demand (so the label says what
    runs), beside Approve when nothing fits the budget and a steadier on-demand choice exists."""
    target = approve_target(quote)
    if target is None:
        return ["reject"]
    if target.market == "on-demand":
        return ["approve_on_demand", "reject"]
    on_demand = any(o.feasible and o.market == "on-demand" for o in quote.options)
    if quote.recommended is None and on_demand:
        return ["approve", "approve_on_demand", "reject"]
    return ["approve", "reject"]


def options_table(quote: Quote, limit: int = TOP_OPTIONS) -> str:
    rows = [f"{'instance':<14}{'market':<10}{'$/h':>7}{'hours':>7}{'cost':>10}{'p90':>10}  fits"]
    for o in quote.options[:limit]:
        fits = "yes" if o.fits_budget else ("no" if o.feasible else "n/a")
        rows.append(
            f"{cut(o.instance_type, 13):<14}{o.market:<10}{o.hourly_usd:>7.3f}{o.hours:>7.2f}"
            f"{money(o.cost_usd):>10}{money(o.cost_p90_usd):>10}  {fits}"
        )
    if len(quote.options) > limit:
        rows.append(f"… {len(quote.options) - limit} more")
    return code_block(rows)


def summary_line(job_id: str, quote: Quote, requester: str) -> str:
    r = quote.request
    asked = f"`/train {cut(escape(r.text), 200)}`" if r.text else f"{r.stage} {r.preset}"
    return (
        f"*Quote {job_id}* for <@{requester}>: {asked}\n"
        f"{r.model} · {quote.workload.method} · budget {money(r.budget_usd)} · "
        f"cap {money(r.cap_usd)}"
    )


def recommendation_text(quote: Quote) -> str:
    rec = quote.recommended
    if rec is None:
        target = approve_target(quote)
        if target is None:
            return ":no_entry: *No option can run this request.* " + _reasons(quote)
        return f":warning: Nothing fits the budget; the cheapest is *{option_name(target)}*."
    return (
        f":white_check_mark: *Recommended: {option_name(rec)}* — {money(rec.cost_usd)} expected "
        f"(p90 {money(rec.cost_p90_usd)}), about {rec.hours:.2f} h at {money(rec.hourly_usd)}/h"
        + (f", interruptions {rec.interruption_bucket}" if rec.interruption_bucket else "")
    )


def _reasons(quote: Quote) -> str:
    reasons = sorted({o.reason for o in quote.options if o.reason})
    return cut(escape("; ".join(reasons)), 1000) if reasons else "No instance types matched."


def duration(hours: float) -> str:
    minutes = hours * 60
    if minutes < 1:
        return "<1 min"
    return f"{minutes:.0f} min" if minutes < 120 else f"{hours:.1f} h"


def phases_text(option: QuoteOption) -> str:
    parts = [f"{name.replace('_', ' ')} {duration(h)}" for name, h in option.phases.items() if h > 0]
    return ("Phases: " + " · ".join(parts)) if parts else ""


def price_text(option: QuoteOption) -> str:
    if option.market == "local":
        return f"Price: the local rate (TRAINOPS_LOCAL_PRICE_PER_HOUR) · speed {option.calibration}"
    source = {"live": "live spot/on-demand prices", "catalog": "catalog prices"}.get(
        option.price_source, f"{option.price_source} prices"
    )
    zone = f" in {option.zone}" if option.zone else ""
    return f"Prices: {source}{zone}, {age(option.price_age_s)} old"


def quote_body(job_id: str, quote: Quote, requester: str) -> list[Block]:
    """Everything a quote says, without its buttons (shared by the live, decided and expired
    versions of the root message)."""
    blocks = [section(summary_line(job_id, quote, requester))]
    if quote.options:
        blocks.append(section(options_table(quote)))
    blocks.append(section(recommendation_text(quote)))
    if quote.over_budget_usd > 0:
        line = f":moneybag: *over budget by {money(quote.over_budget_usd)}, needs an approver*"
        if quote.reduced_cost_usd is not None:
            line += f" (the `reduced` preset would cost about {money(quote.reduced_cost_usd)})"
        blocks.append(section(line))
    if quote.request.command:  # security #14: the code an approver lets run, shown as is
        shown = escape(quote.request.command).replace("```", "`​``")
        blocks.append(section(":lock: *runs custom code, an approver must approve it:*\n"
                              + code_block(shown.splitlines() or [""], 2000)))
    target = approve_target(quote)
    blocks += plan_blocks(quote, target)
    details = [t for t in (phases_text(target), price_text(target)) if t] if target else []
    details += [cut(escape(n), 500) for n in quote.notes[:5]]
    if details:
        blocks.append(context(*details))
    return blocks


def plan_blocks(quote: Quote, target: QuoteOption | None) -> list[Block]:
    """Multi-GPU layout, sweep runs, the per-stage breakdown and user code (issues #11, #12)."""
    from workers.quoting.breakdown import code_lines, layout_line, runs_table, stage_table

    blocks = []
    staged = quote.request.stage != "sft" or bool(target and target.runs)
    if target is not None and target.feasible and (staged or target.gpu_count > 1):
        rows = [layout_line(target), *runs_table(target)]
        if staged:
            rows += ["", *stage_table(target)]
        blocks.append(section(code_block([escape(r) for r in rows])))
    code = code_lines(quote)
    if code:
        blocks.append(section(":lock: *Runs your own code on the GPU machine; an approver must "
                              "approve it, even within budget:*\n"
                              + code_block([escape(c) for c in code], 1500)))
    return blocks


def quote_blocks(job_id: str, quote: Quote, requester: str, expires_at: datetime | None = None
                 ) -> list[Block]:
    """The job's root message while it awaits approval."""
    styles = {"approve": "primary", "approve_on_demand": "primary", "reject": "danger"}
    blocks = quote_body(job_id, quote, requester)
    if expires_at is not None:
        blocks.append(context(f"The buttons go {when(expires_at)}."))
    blocks.append({
        "type": "actions",
        "block_id": f"decide:{job_id}"[:255],
        "elements": [button(a, job_id, styles[a]) for a in approval_actions(quote)],
    })
    return fit(blocks)


def quote_text(job_id: str, quote: Quote) -> str:
    """The notification text of a quote message (what a phone shows)."""
    target = approve_target(quote)
    best = f"{option_name(target)} {money(target.cost_usd)}" if target else "no option fits"
    over = f", over budget by {money(quote.over_budget_usd)}" if quote.over_budget_usd > 0 else ""
    return cut(f"Quote {job_id}: {best}{over}", FALLBACK_TEXT_MAX)


DECIDED = {"approve": "Approved", "approve_on_demand": "Approved on-demand", "reject": "Rejected"}


def decided_blocks(job: Any, decision: str, actor: str, at: datetime | None) -> list[Block]:
    """The root message after a decision: who decided and when; the buttons are gone."""
    icon = ":no_entry_sign:" if decision == "reject" else ":rocket:"
    line = f"{icon} *{DECIDED.get(decision, decision)}* by <@{actor}> {when(at)}"
    return fit([*quote_body(job.job_id, job.quote, job.requester), section(line)])


def expired_blocks(job: Any) -> list[Block]:
    line = (f":hourglass: *Quote expired* {when(job.quote_expires_at)}. Prices move: run "
            f"`/train {cut(escape(job.text or ''), 200)}` again for a fresh quote.")
    return fit([*quote_body(job.job_id, job.quote, job.requester), section(line)])
