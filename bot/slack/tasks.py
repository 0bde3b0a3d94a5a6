"""Celery tasks for Slack (names "trainops.slack.*").

Like a web view, a task takes plain values, loads the world itself (settings, config, database,
a Slack client) and calls logic that lives elsewhere: the quote in workers.quoting, the job in
workers.state.jobs, the message in bot.slack.blocks.quote, a resume in workers.state.spend_actions. Not acks_late: a
redelivered quote would open a second job, and a person can always ask again.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

from celery import shared_task

from bot.slack.blocks.jobs import ephemeral, error_blocks
from bot.slack.blocks.quote import quote_blocks, quote_text
from schemas import tasks
from schemas.errors import UserError

log = logging.getLogger(__name__)


def _world():
    from bot.slack.notifier import slack_client
    from schemas.config import cached_config
    from schemas.db.database import get_database
    from schemas.settings import get_settings

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


@shared_task(name=tasks.SLACK_QUOTE, ignore_result=True)
def quote(request: dict[str, Any], requester: str, channel: str,
          response_url: str | None = None) -> str | None:
    """Quote a parsed /train request, open its job and post the quote as the job's root message.
    Returns the job id (None when the quote could not be made)."""
    from schemas.spec import TrainRequest
    from workers.state.jobs import open_job
    from workers.state.measured import quote_measured

    settings, config, db, client = _world()
    ref = uuid.uuid4().hex[:8]
    try:
        if settings.provider == "local":
            # First use (issue 13): this worker measures its machine once, in a subprocess
            # (no torch here), so the quote is for the machine that will run the job.
            from workers.providers.local_calibration import ensure_profile

            ensure_profile(settings, config, say=lambda line: log.info("calibration: %s", line),
                           request=TrainRequest.model_validate(request))
        made = quote_measured(TrainRequest.model_validate(request), config, db,
                              settings=settings)
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
    return post_quote(db, client, job_id, made, requester, channel, response_url, ref)


def post_quote(db, client, job_id: str, made, requester: str, channel: str,
               response_url: str | None, ref: str) -> str:
    """Post an opened job's quote as its root message (Approve / Reject) and record where it
    is; everything about the job goes into that message's thread from now on."""
    from workers.state.jobs import get_job, set_root_message

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


@shared_task(name=tasks.SLACK_RESUME, ignore_result=True)
def resume(job_id: str, requester: str, channel: str, budget_delta_usd: float | None = None,
           budget_usd: float | None = None, response_url: str | None = None) -> str | None:
    """`/train resume JOB budget=+50`: quote the work left after JOB's last checkpoint as a new
    job (workers.state.spend_actions.resume) and post that quote like any /train. The old job's thread
    hears where its work went on. Returns the new job id (None when it could not be quoted)."""
    from workers.state import spend_actions
    from workers.state.jobs import get_job

    settings, config, db, client = _world()
    ref = uuid.uuid4().hex[:8]
    try:
        new_id, made = spend_actions.resume(
            db, job_id, requester, budget_delta_usd=_decimal(budget_delta_usd),
            budget_usd=_decimal(budget_usd), config=config, settings=settings)
    except UserError as exc:
        log.warning("resume of %s refused ref=%s: %s", job_id, ref, exc)
        _tell(response_url, client, channel, requester, str(exc), ref)
        return None
    except Exception as exc:
        log.error("resume of %s failed ref=%s: %r", job_id, ref, exc, exc_info=exc)
        _tell(response_url, client, channel, requester,
              f"Quoting the rest of {job_id} failed on trainops' side; the team can look it up",
              ref)
        return None
    post_quote(db, client, new_id, made, requester, channel, response_url, ref)
    old = get_job(db, job_id)
    if old is not None and old.channel and old.root_ts:
        try:
            client.chat_postMessage(channel=old.channel, thread_ts=old.root_ts,
                                    text=f":arrow_forward: <@{requester}> asked to resume this "
                                         f"job as {new_id}; its quote is in the channel.")
        except Exception:  # noqa: BLE001 - a courtesy line; the new quote is what matters
            log.exception("could not tell %s's thread about %s", job_id, new_id)
    return new_id


def _decimal(x: float | None) -> Decimal | None:
    # Money crosses the broker as JSON numbers; str() keeps what the person typed (50, not
    # 50.0000000001) before it becomes exact.
    return None if x is None else Decimal(str(x))
