"""Slack as a place for job news: one line in the job's thread for each move the runner makes,
and the spend guard's messages: the progress message (updated in place), the warning with its
buttons (broadcast to the channel), the recovery question, and the final report with its chart.

Also home of `slack_client(settings)`, the one way trainops builds a Slack WebClient (the bot
and the workers both use it): the base URL comes from SLACK_API_URL (a proxy, or a test server)
and slack_sdk's rate-limit handler retries a 429 after the Retry-After Slack asks for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from schemas.errors import UserError

if TYPE_CHECKING:
    from schemas.settings import Settings
    from workers.rules.cards import ProgressCard, WarningCard
    from workers.state.jobs import JobView

log = logging.getLogger(__name__)
# Lines the whole channel should see, not just the thread's followers (reply_broadcast).
BROADCAST_KINDS = frozenset({"cap_reached"})
# Slack answers these when the message to update is gone (deleted, or a channel moved).
GONE = frozenset({"message_not_found", "cant_update_message", "channel_not_found"})


def slack_client(settings: Settings) -> WebClient:
    """A WebClient for the bot token. The token stays inside the client: it is never
    formatted into a message or a log line here."""
    if settings.slack_bot_token is None:
        raise UserError("SLACK_BOT_TOKEN is not set; the Slack app's bot token (xoxb-...) is needed")
    base_url = settings.slack_api_url.rstrip("/") + "/"
    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=base_url, timeout=10
    )
    # slack_sdk retries connection errors by default; add 429s (Retry-After honoured).
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


class SlackNotifier:
    """Implements workers.notify.Notifier for Slack: everything goes into the job's thread (the
    quote message is its root); what the channel must see is also broadcast."""

    def __init__(self, settings: Settings, client: WebClient | None = None):
        self.client = client or slack_client(settings)
        self.settings = settings

    def _clean(self, text: str) -> str:
        """Text that quotes agents and people (a failure's last line, a data path): secrets
        masked and Slack's control characters escaped, so `<!channel>` or `<@U…>` written by
        anyone but the bot is shown, never acted on."""
        from bot.slack.blocks.quote import escape
        from schemas.redact import redact_for

        return escape(redact_for(self.settings, text))

    def event(self, job: JobView, kind: str, text: str) -> None:
        text = self._clean(text)
        if not job.channel:
            # A job started from the terminal has no channel: nothing to post to.
            log.info("job %s has no Slack channel; %s not posted", job.job_id, kind)
            return
        if kind in BROADCAST_KINDS:
            from bot.slack.blocks.guard import cap_reached_blocks

            self._post(job, text, cap_reached_blocks(job.job_id, text), broadcast=True)
            return
        # Without a root (the quote message failed to post), the line goes to the channel.
        self._post(job, f"*{job.job_id}* {text}" if not job.root_ts else text)
        if job.root_ts and kind in ("expired", "cancelled") and job.approved_by is None:
            self._retire_quote(job, kind)

    def _retire_quote(self, job: JobView, kind: str) -> None:
        """A quote nobody decided on that expired or was cancelled loses its buttons, so nobody
        clicks a stale price (a click would only be refused, but the message should not lie)."""
        from bot.slack.blocks.jobs import cancelled_blocks
        from bot.slack.blocks.quote import expired_blocks

        if kind == "expired":
            blocks = expired_blocks(job)
        else:
            actor = next((e.get("actor") for e in reversed(job.events)
                          if e.get("kind") == "cancelled"), None) or "someone"
            blocks = cancelled_blocks(job, actor)
        self.client.chat_update(channel=job.channel, ts=job.root_ts,
                                text=f"{job.job_id}: quote {kind}", blocks=blocks)

    # -- the spend guard ------------------------------------------------------------------------
    def _post(self, job: JobView, text: str, blocks: list | None = None, *,
              broadcast: bool = False) -> dict[str, Any]:
        """One message in the job's thread (or the channel when it has no root message)."""
        extra: dict[str, Any] = {}
        if job.root_ts:
            extra["thread_ts"] = job.root_ts
            if broadcast:
                extra["reply_broadcast"] = True
        if blocks is not None:
            extra["blocks"] = blocks
        return self.client.chat_postMessage(channel=job.channel, text=text, unfurl_links=False,
                                            unfurl_media=False, **extra)

    def progress(self, job: JobView, card: ProgressCard, ref: str | None) -> str | None:
        """Post the progress message once, then edit that same message: a thread with one
        living progress line, not a hundred stale ones. Returns the message ts to keep."""
        from bot.slack.blocks.guard import progress_blocks, progress_text

        if not job.channel:
            return None
        text, blocks = progress_text(card), progress_blocks(card)
        if ref:
            try:
                self.client.chat_update(channel=job.channel, ts=ref, text=text, blocks=blocks)
                return ref
            except SlackApiError as exc:
                if exc.response.get("error") not in GONE:
                    raise
                log.info("progress message %s of %s is gone; posting a new one", ref, job.job_id)
        return self._post(job, text, blocks)["ts"]

    def warning(self, job: JobView, card: WarningCard) -> None:
        from bot.slack.blocks.guard import warning_blocks, warning_text

        if job.channel:
            self._post(job, warning_text(card), warning_blocks(card), broadcast=True)

    def ask_recovery(self, job: JobView, text: str) -> None:
        from bot.slack.blocks.guard import recovery_blocks

        text = self._clean(text)
        if job.channel:
            blocks = recovery_blocks(job.job_id, text, job.requester)
            self._post(job, f"{job.job_id}: {text}", blocks, broadcast=True)

    def report(self, job: JobView, text: str, chart: Path | None) -> None:
        """The report broadcast to the channel, then the chart uploaded into the thread (Slack's
        external upload flow: get an upload URL, POST the bytes, complete into the thread)."""
        from bot.slack.blocks.guard import report_blocks, report_text

        if not job.channel:
            return
        text = self._clean(text)
        has_chart = chart is not None and Path(chart).is_file()
        self._post(job, report_text(job.job_id, text), report_blocks(job, text, has_chart),
                   broadcast=True)
        if has_chart:
            self.client.files_upload_v2(
                channel=job.channel, thread_ts=job.root_ts or None, file=str(chart),
                filename=f"{job.job_id}-report.png", title=f"{job.job_id}: loss and spend",
                initial_comment=f"{job.job_id}: loss and cumulative spend, with the warning "
                                "and cap lines and any interruptions marked",
            )
