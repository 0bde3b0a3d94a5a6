"""The spend guard's buttons: Extend cap, Stop now, Let it run (the warning), Continue on the next
option and Stop (the recovery question).

Like the quote's buttons, the value is a job id and nothing more (guards.load_job loads it);
workers.state.spend_actions decides who may do what and records the choice with the clicker's id. A
choice made is said in the thread and written into the clicked message in place (its buttons
go); a refusal is an ephemeral line for the clicker alone.
"""

from __future__ import annotations

import logging
import re
import threading
import zlib
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.slack.access import load_job, tell
from bot.slack.blocks.guard import CHOSEN, chosen_line, resolved_blocks, usd
from bot.slack.blocks.jobs import ephemeral, error_blocks
from schemas.spec import utcnow

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.slack.deps import Deps
    from workers.state.jobs import JobView, Outcome

log = logging.getLogger("trainops.bot")
GUARD_ACTIONS = re.compile(r"^(extend_cap|stop_now|let_run|continue_recovery)$")
# Clicks on one job are applied one at a time in this process, so two approvers pressing
# "Extend" together extend once: the second sees the cap already moved (see _stale_warning).
_LOCKS = [threading.Lock() for _ in range(64)]


def _lock_for(job_id: str) -> threading.Lock:
    return _LOCKS[zlib.crc32(job_id.encode()) % len(_LOCKS)]


def _stale_warning(action: dict, job: JobView) -> str | None:
    """A warning's block_id names the cap it was raised for (`warning:JOB:CAP`). If the cap has
    moved since, an Extend click on it is refused: the payload can only refuse, never grant."""
    parts = str(action.get("block_id") or "").split(":")
    if len(parts) != 3 or parts[0] != "warning":
        return None
    try:
        shown = Decimal(parts[2])
    except ArithmeticError:
        return None
    current = Decimal(str(job.cap_usd))
    if shown != current:
        return (f"the cap of {job.job_id} is already {usd(current)} (it was {usd(shown)} when "
                "this warning was posted); nothing changed")
    return None


def apply_choice(deps: Deps, choice: str, job: JobView, user: str) -> Outcome:
    """The service call behind each button. Extending adds the amount the warning offered:
    25% of the job's cap as the server has it now, rounded up to whole dollars."""
    from workers.rules.cards import default_extend_by
    from workers.state import spend_actions

    approvers = deps.settings.approvers
    if choice == "extend_cap":
        by = default_extend_by(Decimal(str(job.cap_usd)))
        return spend_actions.extend_cap(deps.db, job.job_id, user, by, approvers)
    if choice == "stop_now":
        return spend_actions.stop_now(deps.db, job.job_id, user, approvers)
    if choice == "let_run":
        return spend_actions.let_run(deps.db, job.job_id, user)
    return spend_actions.continue_recovery(deps.db, job.job_id, user, approvers)


VERBS = {"extend_cap": "extend the cap of", "stop_now": "stop", "let_run": "decide on",
         "continue_recovery": "continue"}


def register(app: App, deps: Deps) -> None:
    from workers.state.jobs import authorize, get_job, refuse

    @app.action(GUARD_ACTIONS, middleware=[load_job(deps)])
    def on_guard_choice(ack, body: dict, action: dict, context, client) -> None:
        ack()
        user, choice, job_id = context.user_id, action["action_id"], context["job"].job_id
        with _lock_for(job_id):
            job = get_job(deps.db, job_id) or context["job"]  # as it stands now
            # Its requester or an approver, in the job's channel (extend: approvers only,
            # checked by the service): every refusal is also an audit event on the job.
            denied = authorize(job, user, deps.settings.approvers, VERBS[choice],
                               context.channel_id)
            if denied:
                refuse(deps.db, job_id, user, denied)
            stale = denied or (_stale_warning(action, job) if choice == "extend_cap" else None)
            outcome = None if stale else apply_choice(deps, choice, job, user)
        if outcome is None or not outcome.ok:
            message = stale or outcome.message
            log.info("job %s: %s by %s refused: %s", job_id, choice, user, message)
            tell(body, context, ephemeral(error_blocks(message), message))
            return
        log.info("job %s: %s by %s", job_id, choice, user)
        job = outcome.job or job
        channel = job.channel or context.channel_id
        detail = (f"cap now {usd(job.cap_usd)}" if choice == "extend_cap" else "")
        client.chat_postMessage(
            channel=channel, thread_ts=job.root_ts,
            text=f"{CHOSEN[choice]} — <@{user}>: {outcome.message}",
        )
        clicked = body.get("message") or {}
        clicked_ts = (body.get("container") or {}).get("message_ts") or clicked.get("ts")
        if clicked_ts:
            client.chat_update(
                channel=channel, ts=clicked_ts,
                text=f"{job.job_id}: {CHOSEN[choice].split(' ', 1)[1]} by <@{user}>",
                blocks=resolved_blocks(clicked.get("blocks") or [],
                                       chosen_line(choice, user, utcnow(), detail)),
            )
