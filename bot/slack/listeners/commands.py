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

from bot.slack.blocks.jobs import (
    cancelled_blocks,
    ephemeral,
    error_blocks,
    help_blocks,
    jobs_blocks,
    status_blocks,
)
from bot.slack.blocks.quote import cut
from schemas import tasks
from schemas.errors import UserError
from workers.queue.enqueue import EnqueueFailed

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.slack.deps import Deps

log = logging.getLogger("trainops.bot")
COMMAND = "/train"
EXAMPLE = "/train sft reduced budget=100"


def register(app: App, deps: Deps) -> None:
    from bot.grammar import commands as grammar
    from workers.state import jobs

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

        approvers = deps.settings.approvers

        def _owned(job_id: str, what: str):
            """The job when `user` may `what` it here; else an ephemeral refusal (and an audit
            event on the job) and None."""
            job = jobs.get_job(deps.db, job_id)
            if job is None:
                raise UserError(f"no job {job_id}; `/train jobs` lists your live jobs")
            why = jobs.authorize(job, user, approvers, what, channel)
            if why is None:
                return job
            jobs.refuse(deps.db, job_id, user, why)
            ack(**ephemeral(error_blocks(why), why))
            return None

        def _handed_on(task: str, **kwargs) -> bool:
            try:
                deps.enqueue(task, **kwargs)
                return True
            except EnqueueFailed as exc:
                log.error("could not enqueue %s for %s: %s", task, user, exc)
                line = ("Could not reach trainops' job queue (Redis), so nothing was quoted or "
                        "started. Send the same command again once it is back: "
                        f"`{COMMAND} {cut(text, 300)}`")
                ack(**ephemeral(error_blocks(line), line))
                return False

        if isinstance(parsed, grammar.Train):
            # Enqueue before the ack (a broker that is down fails within about a second), so
            # an outage is said plainly, with the exact command to send again.
            if not _handed_on(tasks.SLACK_QUOTE, request=parsed.request.model_dump(mode="json"),
                              requester=user, channel=channel,
                              response_url=command.get("response_url")):
                return
            ack(**ephemeral([], f"Quoting `{COMMAND} {cut(text, 200)}`… the quote will be "
                                "posted in this channel."))
        elif isinstance(parsed, grammar.Help):
            ack(**ephemeral(help_blocks(grammar.HELP_TEXT), "How to use /train"))
        elif isinstance(parsed, grammar.Jobs):
            # Approvers see every job; anyone else, their own (never others' command= strings).
            mine = None if user in approvers else user
            live = jobs.list_jobs(deps.db, live_only=True, limit=50, requester=mine)
            ack(**ephemeral(jobs_blocks(live, accuracy=_accuracy_line(deps.db)),
                            f"{len(live)} live job(s)"))
        elif isinstance(parsed, grammar.Status):
            if parsed.job_id is None:
                mine = None if user in approvers else user
                recent = jobs.list_jobs(deps.db, limit=10, requester=mine)
                ack(**ephemeral(jobs_blocks(recent, title="Recent jobs"), "Recent jobs"))
                return
            job = _owned(parsed.job_id, "see the status of")
            if job is not None:
                ack(**ephemeral(status_blocks(job), f"{job.job_id}: {job.status.value}"))
        elif isinstance(parsed, grammar.Cancel):
            outcome = jobs.cancel(deps.db, parsed.job_id, user, approvers, channel)
            ack(**ephemeral(error_blocks(outcome.message) if not outcome.ok else [],
                            outcome.message))
            if outcome.ok and outcome.job is not None:
                announce_cancel(client, outcome.job, user)
        elif isinstance(parsed, grammar.Resume):
            # Only a cheap existence and ownership check here; whether the job can resume,
            # and at what price, is the worker's (it reads checkpoints and prices).
            if _owned(parsed.job_id, "resume") is None:
                return
            if not _handed_on(tasks.SLACK_RESUME, job_id=parsed.job_id, requester=user,
                              channel=channel, budget_delta_usd=parsed.budget_delta_usd,
                              budget_usd=parsed.budget_usd,
                              response_url=command.get("response_url")):
                return
            ack(**ephemeral([], f"Quoting the rest of {parsed.job_id}… the quote will be "
                                "posted in this channel."))
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


def _accuracy_line(db) -> str | None:
    """How close finished runs came to their quotes, for `/train jobs` (issue 13)."""
    from workers.state.accuracy import accuracy

    try:
        found = accuracy(db)
    except Exception:  # noqa: BLE001 - the list goes out without the line
        log.exception("could not compute the quote accuracy")
        return None
    return found.line() if found else "quote accuracy: no finished runs yet"
