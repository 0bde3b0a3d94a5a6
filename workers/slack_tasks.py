"""Celery tasks for Slack (names "trainops.slack.*").

Like a web view, a task takes plain values, loads the world itself (settings, config, database,
a Slack client) and calls logic that lives elsewhere: the quote in workers.quoting, the job in
workers.jobs, the message in bot.blocks. Not acks_late: a redelivered quote would open a second
job, and a person can always ask again.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import shared_task

from bot.blocks import quote_blocks, quote_text
from bot.blocks_jobs import ephemeral, error_blocks
from schemas.errors import UserError

log = logging.getLogger(__name__)


def _world():
    from schemas.config import cached_config
    from schemas.db import get_database
    from schemas.settings import get_settings
    from workers.notify_slack import slack_client

    settings = get_settings()
    return settings, cached_config(settings.config_path), get_database(settings), \
        slack_client(settings)


def _tell(response_url: str | None, client, channel: str, user: str, line: str, ref: str) -> None:
    """An ephemeral line for the person who asked: through the command's response_url when we
    have it (works in channels the bot is not in), else chat.postEphemeral."""
    payload = ephemeral(error_blocks(line, ref), f"{line} (ref {ref})")
    try:
        if response_url:
            from slack_sdk.webhook import WebhookClient

            WebhookClient(response_url, timeout=10).send_dict(payload)
        else:
            client.chat_postEphemeral(channel=channel, user=user, text=payload["text"],
                                      blocks=payload["blocks"])
    except Exception:  # noqa: BLE001 - Slack down as well: the log keeps the reference
        log.exception("could not tell %s about ref=%s", user, ref)


@shared_task(name="trainops.slack.quote", ignore_result=True)
def quote(request: dict[str, Any], requester: str, channel: str,
          response_url: str | None = None) -> str | None:
    """Quote a parsed /train request, open its job and post the quote as the job's root message.
    Returns the job id (None when the quote could not be made)."""
    from schemas.spec import TrainRequest
    from workers.jobs import get_job, open_job, set_root_message
    from workers.quoting import make_quote

    settings, config, db, client = _world()
    ref = uuid.uuid4().hex[:8]
    try:
        made = make_quote(TrainRequest.model_validate(request), config, settings=settings)
    except UserError as exc:
        log.warning("quote refused ref=%s: %s", ref, exc)
        _tell(response_url, client, channel, requester, str(exc), ref)
        return None
    except Exception as exc:
        log.error("quote failed ref=%s: %r", ref, exc, exc_info=exc)
        _tell(response_url, client, channel, requester,
              "Quoting failed on trainops' side; the team can look it up", ref)
        return None

    job_id = open_job(db, made, requester, channel, provider=settings.provider,
                      ttl_h=config.defaults.quote_ttl_h)
    job = get_job(db, job_id)
    try:
        posted = client.chat_postMessage(
            channel=channel, text=quote_text(job_id, made),
            blocks=quote_blocks(job_id, made, requester, job.quote_expires_at if job else None),
            unfurl_links=False,
        )
    except Exception as exc:
        # Typically not_in_channel: the job stays quoted (it expires), the person learns why.
        log.error("posting quote %s failed ref=%s: %r", job_id, ref, exc)
        _tell(response_url, client, channel, requester,
              f"Could not post quote {job_id} here (is the trainops app in this channel? "
              "/invite it)", ref)
        return job_id
    set_root_message(db, job_id, posted["channel"], posted["ts"])
    return job_id
