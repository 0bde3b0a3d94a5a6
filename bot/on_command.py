"""`/train …`: parse, ack within Slack's 3 seconds, hand on.

A request to train is acked with an ephemeral "quoting…" and becomes the Celery task
`trainops.slack.quote` (prices and the estimator may take seconds); `resume JOB budget=+50`
likewise becomes `trainops.slack.resume` (a quote for the remaining work, as a new job); status,
jobs, cancel and help are answered in the ack itself, from one quick database read. A parse error is the
grammar's own line plus an example, seen only by the person who typed it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.blocks import cut
from bot.blocks_jobs import (
    cancelled_blocks,
    ephemeral,
    error_blocks,
    help_blocks,
    jobs_blocks,
    status_blocks,
)
from schemas.errors import UserError

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.app import Deps

log = logging.getLogger("trainops.bot")
COMMAND = "/train"
EXAMPLE = "/train sft reduced budget=100"
QUOTE_TASK = "trainops.slack.quote"
RESUME_TASK = "trainops.slack.resume"


def register(app: App, deps: Deps) -> None:
    from bot import commands as grammar
    from workers import jobs

    @app.command(COMMAND)
    def on_train(ack, command: dict, context, client) -> None:
        text = (command.get("text") or "").strip()
        user, channel = command["user_id"], command["channel_id"]
        try:
            parsed = grammar.parse_command(text, deps.config)
        except grammar.ParseError as exc:
            line = f"{exc} Example: `{EXAMPLE}` (`/train help` for more)"
            ack(**ephemeral(error_blocks(line), line))
            return

        if isinstance(parsed, grammar.Train):
            ack(**ephemeral([], f"Quoting `{COMMAND} {cut(text, 200)}`… the quote will be "
                                "posted in this channel."))
            deps.enqueue(QUOTE_TASK, request=parsed.request.model_dump(mode="json"),
                         requester=user, channel=channel,
                         response_url=command.get("response_url"))
        elif isinstance(parsed, grammar.Help):
            ack(**ephemeral(help_blocks(grammar.HELP_TEXT), "How to use /train"))
        elif isinstance(parsed, grammar.Jobs):
            live = jobs.list_jobs(deps.db, live_only=True, limit=50)
            ack(**ephemeral(jobs_blocks(live), f"{len(live)} live job(s)"))
        elif isinstance(parsed, grammar.Status):
            if parsed.job_id is None:
                recent = jobs.list_jobs(deps.db, limit=10)
                ack(**ephemeral(jobs_blocks(recent, title="Recent jobs"), "Recent jobs"))
                return
            job = jobs.get_job(deps.db, parsed.job_id)
            if job is None:
                raise UserError(f"no job {parsed.job_id}; `/train jobs` lists live jobs")
            ack(**ephemeral(status_blocks(job), f"{job.job_id}: {job.status.value}"))
        elif isinstance(parsed, grammar.Cancel):
            outcome = jobs.cancel(deps.db, parsed.job_id, user)
            ack(**ephemeral(error_blocks(outcome.message) if not outcome.ok else [],
                            outcome.message))
            if outcome.ok and outcome.job is not None:
                announce_cancel(client, outcome.job, user)
        elif isinstance(parsed, grammar.Resume):
            # Only a cheap existence check here; whether the job can resume, and at what price,
            # is the worker's (it reads checkpoints and prices).
            if jobs.get_job(deps.db, parsed.job_id) is None:
                raise UserError(f"no job {parsed.job_id}; `/train status` lists recent jobs")
            ack(**ephemeral([], f"Quoting the rest of {parsed.job_id}… the quote will be "
                                "posted in this channel."))
            deps.enqueue(RESUME_TASK, job_id=parsed.job_id, requester=user, channel=channel,
                         budget_delta_usd=parsed.budget_delta_usd, budget_usd=parsed.budget_usd,
                         response_url=command.get("response_url"))
        else:
            raise UserError(f"`{cut(text, 100)}` is not a /train command; try `/train help`")


def announce_cancel(client, job, user: str) -> None:
    """A cancel is news for everyone in the job's thread; if the job was still waiting for a
    decision, its quote loses its buttons."""
    if not (job.channel and job.root_ts):
        return
    client.chat_postMessage(channel=job.channel, thread_ts=job.root_ts,
                            text=f":octagonal_sign: Cancelled by <@{user}>.")
    if job.approved_by is None:  # never decided: the root still shows Approve / Reject
        client.chat_update(channel=job.channel, ts=job.root_ts,
                           text=f"{job.job_id} cancelled", blocks=cancelled_blocks(job, user))
