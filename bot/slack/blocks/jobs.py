"""Block Kit builders for status, job listings, help and errors: pure, like bot/slack/blocks/quote.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.slack.blocks.quote import (
    CONTEXT_TEXT_MAX,
    FALLBACK_TEXT_MAX,
    Block,
    code_block,
    context,
    cut,
    escape,
    fit,
    money,
    quote_body,
    section,
    when,
)

MAX_EVENTS = 8  # latest history in a status reply
MAX_JOBS = 15  # rows of /train jobs

def _status(job: Any) -> str:
    status = getattr(job.status, "value", job.status)
    cause = getattr(job.failure_cause, "value", job.failure_cause)
    return f"{status} ({cause})" if cause else str(status)


def _spend(job: Any) -> str:
    share = f" ({job.spend_usd / job.cap_usd:.0%})" if job.cap_usd else ""
    return f"{money(job.spend_usd)} of cap {money(job.cap_usd)}{share}"


def status_blocks(job: Any) -> list[Block]:
    """One job: state, spend against the cap, its attempts and its latest events."""
    blocks = [section(
        f"*{job.job_id}* — *{_status(job)}* · spend {_spend(job)} · budget "
        f"{money(job.budget_usd)} · asked by <@{job.requester}>\n`/train {cut(escape(job.text or ''), 300)}`"
    )]
    if job.attempts:
        rows = [f"{'#':<3}{'instance':<14}{'market':<10}{'zone':<12}{'$/h':>7}  ended"]
        for a in job.attempts[-10:]:
            rows.append(
                f"{a.get('attempt', ''):<3}{cut(str(a.get('instance_type') or '—'), 13):<14}"
                f"{str(a.get('market') or '—'):<10}{str(a.get('zone') or '—'):<12}"
                f"{float(a.get('hourly_usd') or 0):>7.3f}  {a.get('end_reason') or '—'}"
            )
        blocks.append(section(code_block(rows)))
    if job.events:
        lines = [
            f"{when(e.get('at'))} {e.get('kind')}"
            + (f" by <@{e['actor']}>" if _is_user(e.get("actor")) else "")
            + (f": {cut(escape(str(e['message'])), 200)}" if e.get("message") else "")
            for e in job.events[-MAX_EVENTS:]
        ]
        blocks.append(context(cut("\n".join(lines), CONTEXT_TEXT_MAX)))
    return fit(blocks)


def _is_user(actor: Any) -> bool:
    # Slack user ids start with U or W; system actors are words (worker, monitor, operator).
    return isinstance(actor, str) and actor[:1] in "UW" and actor.isalnum() and actor.isupper()


def jobs_blocks(jobs: Sequence[Any], title: str = "Live jobs",
                accuracy: str | None = None) -> list[Block]:
    """Jobs with their status, spend and cap, newest first; `accuracy`: one line on how close
    finished runs came to their quotes (workers/rules/accuracy.py)."""
    tail = [context(accuracy)] if accuracy else []
    if not jobs:
        return [section(f"*{title}*: none. `/train help` shows how to start one."), *tail]
    lines = [
        f"`{j.job_id}` *{_status(j)}* · {_spend(j)} · <@{j.requester}>"
        for j in jobs[:MAX_JOBS]
    ]
    more = [context(f"…and {len(jobs) - MAX_JOBS} more")] if len(jobs) > MAX_JOBS else []
    return fit([section(f"*{title} ({len(jobs)})*"), section("\n".join(lines)), *more, *tail])


def help_blocks(help_text: str) -> list[Block]:
    return [section("*/train* — quote, approve and run fine-tuning jobs"),
            section(code_block(escape(help_text).splitlines()))]


def error_blocks(message: str, ref: str | None = None) -> list[Block]:
    """An ephemeral error: one line for the person, plus a reference the operator can grep
    the log for (the log has the details; Slack never does)."""
    text = f":warning: {cut(escape(message), 2000)}"
    return [section(text), context(f"ref `{ref}`")] if ref else [section(text)]


def ephemeral(blocks: list[Block], text: str) -> dict[str, Any]:
    """A response body for a slash command or a response_url: seen only by the person. The
    fallback text quotes people and errors too (a data path, a command): escaped like blocks."""
    payload: dict[str, Any] = {"response_type": "ephemeral",
                               "text": cut(escape(text), FALLBACK_TEXT_MAX)}
    if blocks:
        payload["blocks"] = blocks
    return payload


def cancelled_blocks(job: Any, actor: str) -> list[Block]:
    """The root message of a job cancelled before anyone decided: the buttons go."""
    line = f":octagonal_sign: *Cancelled* by <@{actor}>"
    return fit([*quote_body(job.job_id, job.quote, job.requester), section(line)])
