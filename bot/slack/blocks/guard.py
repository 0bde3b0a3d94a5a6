"""Block Kit builders for the spend guard: the progress message, the warning with its buttons, the
recovery question, the cap-reached notice and the final report. Pure, like bot/slack/blocks/quote.py.

The cards (workers/rules/cards.py) carry the figures; these functions only lay them out. Buttons carry
the job id alone: the server loads the job, its cap and its people itself, so a forged value can
name a job, never an amount or a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from bot.slack.blocks.quote import (
    BUTTON_TEXT_MAX,
    BUTTON_VALUE_MAX,
    FALLBACK_TEXT_MAX,
    MAX_BLOCKS,
    Block,
    code_block,
    context,
    cut,
    escape,
    fit,
    section,
    when,
)
from workers.rules.cards import ProgressCard, WarningCard, default_extend_by, duration

GUARD_ACTIONS = ("extend_cap", "stop_now", "let_run", "continue_recovery")
# What a choice looks like once made (the in-place update and the thread line).
CHOSEN = {
    "extend_cap": ":arrow_up: extended the cap",
    "stop_now": ":octagonal_sign: asked to stop now",
    "let_run": ":arrow_forward: let it run to the cap",
    "continue_recovery": ":arrows_counterclockwise: continued on the next option",
}
RESUME_HINT = "/train resume {job_id} budget=+50"


def usd(x: Decimal | float | None) -> str:
    return "—" if x is None else f"${Decimal(str(x)):,.2f}"


def whole_usd(x: Decimal) -> str:
    """A button label amount: "$13", or "$12.50" when it is not whole dollars."""
    return f"${x:,.0f}" if x == x.to_integral_value() else f"${x:,.2f}"


def guard_button(action_id: str, label: str, job_id: str, style: str | None = None) -> Block:
    if action_id not in GUARD_ACTIONS:
        raise ValueError(f"not a guard action: {action_id}")
    if len(job_id) > BUTTON_VALUE_MAX:
        raise ValueError("a job id longer than a button value")
    out: Block = {"type": "button", "action_id": action_id, "value": job_id,
                  "text": {"type": "plain_text", "text": cut(label, BUTTON_TEXT_MAX)}}
    if style:
        out["style"] = style
    return out


def _actions(block_id: str, buttons: list[Block]) -> Block:
    # block_id says which question this is; the handlers take the job from the button's value
    # and use the block_id only to refuse a stale click, never to grant anything.
    return {"type": "actions", "block_id": block_id[:255], "elements": buttons}


# -- progress ----------------------------------------------------------------------------------

def _share(part: Decimal, whole: Decimal) -> str:
    return f"{float(part / whole):.0%}" if whole > 0 else "—"


def progress_text(card: ProgressCard) -> str:
    """The notification text of the progress message (what a phone shows)."""
    return cut(f"{card.job_id}: step {card.step:,}/{card.total_steps:,}, "
               f"{usd(card.spent_usd)} of {usd(card.cap_usd)} cap",
               FALLBACK_TEXT_MAX)


def progress_blocks(card: ProgressCard) -> list[Block]:
    """One message per job, updated in place: where training is and what it costs."""
    loss = "—" if card.loss is None else f"{card.loss:.4f}"
    stage = f"stage *{escape(card.stage)}* · " if card.stage else ""
    training = (
        f"*{card.job_id}* · {stage}{escape(card.phase)} · step {card.step:,}/"
        f"{card.total_steps:,} "
        f"({card.step_fraction:.0%}) · loss {loss} · {card.tokens_per_s:,.0f} tokens/s · "
        f"ETA {duration(card.eta_s)}"
    )
    spend = (
        f"Spend `{card.bar()}` {usd(card.spent_usd)} of {usd(card.cap_usd)} cap "
        f"({_share(card.spent_usd, card.cap_usd)}) · warning at {usd(card.warn_usd)}"
    )
    if card.projected_final_usd is not None:
        over = card.projected_final_usd > card.cap_usd
        spend += (f"\n{':warning: ' if over else ''}Projected final cost "
                  f"*{usd(card.projected_final_usd)}*" + (" — over the cap" if over else ""))
    machine = " ".join(escape(x) for x in (card.instance_type, card.market) if x) or "machine"
    runs = [section(code_block([escape(r.line().strip()) for r in card.runs]))] \
        if card.runs else []  # every run of a sweep, one line each
    return fit([
        section(training),
        *runs,
        section(spend),
        context(f"attempt {card.attempt} on {machine} · updated {when(card.updated_at)}"),
    ])


# -- the warning -------------------------------------------------------------------------------

def warning_text(card: WarningCard) -> str:
    return cut(f"{card.job_id}: {usd(card.spent_usd)} of its {usd(card.cap_usd)} cap spent "
               f"({card.reason})", FALLBACK_TEXT_MAX)


def warning_blocks(card: WarningCard) -> list[Block]:
    """A reply broadcast to the channel: the requester is mentioned, the reason said, and three
    ways on offered. Extending is for approvers; the server checks who clicks."""
    extend_by = card.extend_by_usd or default_extend_by(card.cap_usd)
    head = (f":warning: <@{card.requester}> *{card.job_id}* has spent {usd(card.spent_usd)} of "
            f"its {usd(card.cap_usd)} cap ({_share(card.spent_usd, card.cap_usd)}): "
            f"{escape(card.reason)}.")
    if card.projected_final_usd is not None:
        head += f"\nProjected final cost: *{usd(card.projected_final_usd)}*."
    return fit([
        section(head),
        context(f"Extending (to {usd(card.cap_usd + extend_by)}) needs an approver. Stop now "
                "saves a checkpoint, then terminates. At the cap the job stops by itself."),
        _actions(f"warning:{card.job_id}:{card.cap_usd:f}", [
            guard_button("extend_cap", f"Extend cap by {whole_usd(extend_by)}", card.job_id,
                         "primary"),
            guard_button("stop_now", "Stop now", card.job_id, "danger"),
            guard_button("let_run", "Let it run to the cap", card.job_id),
        ]),
    ])


# -- recovery, the cap, the report -------------------------------------------------------------

def recovery_blocks(job_id: str, text: str, requester: str | None = None) -> list[Block]:
    """After an interruption the remaining budget does not cover: go on, or stop. The requester
    is mentioned: the job waits, and pays nothing, until someone answers."""
    who = f"<@{requester}> " if requester else ""
    return fit([
        section(f":question: {who}*{job_id}* — {text}"),
        _actions(f"recovery:{job_id}", [
            guard_button("continue_recovery", "Continue on the next option", job_id, "primary"),
            guard_button("stop_now", "Stop", job_id, "danger"),
        ]),
    ])


def cap_reached_blocks(job_id: str, text: str) -> list[Block]:
    """The job stopped at its cap: what happened (the runner's line) and how to go on."""
    blocks = [section(f":octagonal_sign: {text}")]
    if "/train resume" not in text:
        blocks.append(context(f"To go on from the last checkpoint: "
                              f"`{RESUME_HINT.format(job_id=job_id)}` quotes the remaining work."))
    return fit(blocks)


def report_blocks(job: Any, text: str, chart: bool) -> list[Block]:
    """The final report (text from workers/rules/report.py) plus who, what and where the chart is."""
    asked = f"`/train {cut(escape(job.text or ''), 200)}`" if job.text else job.job_id
    notes = [f"asked by <@{job.requester}>: {asked}"]
    if chart:
        notes.append("loss per run and spend chart in the thread" if "Sweep of" in text
                     else "loss and spend chart in the thread")
    return fit([section(f":checkered_flag: {text}"), context(*notes)])


def report_text(job_id: str, text: str) -> str:
    first = text.splitlines()[0] if text else job_id
    return cut(first.replace("*", ""), FALLBACK_TEXT_MAX)


# -- after a click -----------------------------------------------------------------------------

def chosen_line(action_id: str, actor: str, at: Any = None, detail: str = "") -> str:
    line = f"{CHOSEN.get(action_id, action_id)} — <@{actor}>"
    if at is not None:
        line += f" {when(at)}"
    return line + (f": {escape(detail)}" if detail else "")


def resolved_blocks(shown: Sequence[Block], line: str) -> list[Block]:
    """The clicked message as it was, minus its buttons, plus who chose what. `shown` is the
    message Slack sent back with the click (our own blocks); only its layout is reused."""
    kept = [b for b in shown if isinstance(b, dict) and b.get("type") != "actions"]
    return [*kept[: MAX_BLOCKS - 1], section(line)]
