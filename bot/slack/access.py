"""Cross-cutting parts of the Bolt app: who may use it, which job a button names, and the one
error handler that turns an exception into an ephemeral line with a reference id.

A reply to a slash command can ride on the HTTP response itself (fast, and nothing to post);
anything after the ack goes through `respond` (the request's response_url) or chat.postEphemeral.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

from slack_bolt import BoltResponse

from bot.slack.blocks.jobs import ephemeral, error_blocks
from schemas.errors import UserError

if TYPE_CHECKING:
    from bot.slack.deps import Deps

log = logging.getLogger("trainops.bot")
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def ephemeral_response(payload: dict[str, Any]) -> BoltResponse:
    return BoltResponse(status=200, body=json.dumps(payload),
                        headers={"content-type": ["application/json;charset=utf-8"]})


def tell(body: dict, context: Any, payload: dict[str, Any]) -> None:
    """Send an ephemeral payload to the person behind `body`, after the ack."""
    if context.respond is not None:  # the request's response_url
        context.respond(**payload, replace_original=False)
        return
    context.client.chat_postEphemeral(
        channel=context.channel_id, user=context.user_id,
        text=payload["text"], blocks=payload.get("blocks"),
    )


def _channel_name(body: dict) -> str | None:
    return body.get("channel_name") or (body.get("channel") or {}).get("name")


def access(deps: Deps):
    """Global middleware: config.access.allowed_channels / allowed_users (empty: everyone).
    Approvers are always allowed, so a restricted team can still decide its overruns."""
    rules = deps.config.access
    channels, users = set(rules.allowed_channels), set(rules.allowed_users)

    def check_access(body: dict, context, next):  # noqa: A002 - Bolt's argument name
        user, channel = context.user_id, context.channel_id
        in_channel = not channels or channel in channels or _channel_name(body) in channels
        is_user = not users or user in users or user in deps.settings.approvers
        if in_channel and is_user:
            return next()
        why = ("trainops is not enabled in this channel" if not in_channel
               else "you are not on trainops' list of users")
        log.info("access refused: user=%s channel=%s (%s)", user, channel, why)
        payload = ephemeral(error_blocks(f"Sorry, {why}; ask your trainops admin."), why)
        if body.get("command"):
            return ephemeral_response(payload)
        if body.get("type") == "block_actions":
            tell(body, context, payload)
        return BoltResponse(status=200, body="")

    return check_access


def load_job(deps: Deps):
    """Listener middleware for buttons: the value is a job id and nothing else; load that job
    (the server trusts its own row, never the payload) into context["job"]."""
    from workers.state.jobs import get_job

    def load(body: dict, context, next):  # noqa: A002
        actions = body.get("actions") or [{}]
        value = str(actions[0].get("value") or "")
        if not JOB_ID.match(value):
            raise UserError("that button does not name a job; run /train again for a new quote")
        job = get_job(deps.db, value)
        if job is None:
            raise UserError(f"job {value} does not exist (any more); /train jobs lists live jobs")
        context["job"] = job
        return next()

    return load


def error_handler(deps: Deps):
    """The one place an exception becomes words for a person: a UserError says its own line,
    anything else says "something went wrong"; both carry a short reference, and the full error
    (traceback included) goes to the log under the same reference, never to Slack."""

    def handle(error: Exception, body: dict, context, response: BoltResponse | None):
        ref = uuid.uuid4().hex[:8]
        if isinstance(error, UserError):
            message = str(error).splitlines()[0] if str(error) else "that did not work"
            log.warning("user error ref=%s user=%s: %s", ref, context.user_id, message)
        else:
            message = "Something went wrong on trainops' side; the team can look it up"
            log.error("unexpected error ref=%s user=%s: %r", ref, context.user_id, error,
                      exc_info=error)
        payload = ephemeral(error_blocks(message, ref), f"{message} (ref {ref})")
        if response is not None and body.get("command"):
            # Not acked yet: the error is the slash command's answer.
            return ephemeral_response(payload)
        try:
            tell(body, context, payload)
        except Exception:  # noqa: BLE001 - Slack unreachable: the log still has it all
            log.exception("could not tell user about ref=%s", ref)
        return BoltResponse(status=200, body="") if response is not None else None

    return handle
