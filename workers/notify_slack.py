"""Slack as a place for job news: one line in the job's thread for each move the runner makes.

Also home of `slack_client(settings)`, the one way trainops builds a Slack WebClient (the bot
and the workers both use it): the base URL comes from SLACK_API_URL (a proxy, or a test server)
and slack_sdk's rate-limit handler retries a 429 after the Retry-After Slack asks for.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from schemas.errors import UserError

if TYPE_CHECKING:
    from schemas.settings import Settings
    from workers.jobs import JobView

log = logging.getLogger(__name__)


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
    """Implements workers.notify.Notifier: `event()` posts a line in the job's thread."""

    def __init__(self, settings: Settings, client: WebClient | None = None):
        self.client = client or slack_client(settings)

    def event(self, job: JobView, kind: str, text: str) -> None:
        if not job.channel:
            # A job started from the terminal has no channel: nothing to post to.
            log.info("job %s has no Slack channel; %s not posted", job.job_id, kind)
            return
        # Without a root (the quote message failed to post), the line goes to the channel.
        self.client.chat_postMessage(
            channel=job.channel,
            thread_ts=job.root_ts or None,
            text=f"*{job.job_id}* {text}" if not job.root_ts else text,
            unfurl_links=False,
            unfurl_media=False,
        )
        if job.root_ts and kind in ("expired", "cancelled") and job.approved_by is None:
            self._retire_quote(job, kind)

    def _retire_quote(self, job: JobView, kind: str) -> None:
        """A quote nobody decided on that expired or was cancelled loses its buttons, so nobody
        clicks a stale price (a click would only be refused, but the message should not lie)."""
        from bot.blocks import expired_blocks
        from bot.blocks_jobs import cancelled_blocks

        if kind == "expired":
            blocks = expired_blocks(job)
        else:
            actor = next((e.get("actor") for e in reversed(job.events)
                          if e.get("kind") == "cancelled"), None) or "someone"
            blocks = cancelled_blocks(job, actor)
        self.client.chat_update(channel=job.channel, ts=job.root_ts,
                                text=f"{job.job_id}: quote {kind}", blocks=blocks)
