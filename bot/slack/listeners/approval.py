"""The quote's buttons: Approve, Approve on-demand, Reject.

The button's value is a job id and nothing more; guards.load_job has put that job in the
context. `workers.state.jobs.decide` applies the approval policy and claims the job with a
conditional update, so five fast clicks make one decision: the winner's click rewrites the root
message in place (who, when, no buttons) and the others get an ephemeral explanation.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from bot.slack.access import load_job, tell
from bot.slack.blocks.jobs import ephemeral, error_blocks
from bot.slack.blocks.quote import decided_blocks, expired_blocks
from schemas.status import JobStatus

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.slack.deps import Deps

log = logging.getLogger("trainops.bot")
DECISIONS = re.compile(r"^(approve|approve_on_demand|reject)$")


def register(app: App, deps: Deps) -> None:
    from workers.state import jobs

    @app.action(DECISIONS, middleware=[load_job(deps)])
    def on_decision(ack, body: dict, action: dict, context, client) -> None:
        ack()
        user, decision = context.user_id, action["action_id"]
        outcome = jobs.decide(deps.db, context["job"].job_id, user, decision,
                              deps.settings.approvers)
        job = outcome.job or context["job"]
        channel = job.channel or context.channel_id
        root_ts = job.root_ts or (body.get("container") or {}).get("message_ts")
        if outcome.ok:
            log.info("job %s: %s by %s", job.job_id, decision, user)
            client.chat_update(
                channel=channel, ts=root_ts,
                text=f"{job.job_id}: {decision.replace('_', ' ')} by <@{user}>",
                blocks=decided_blocks(job, decision, user, job.decided_at),
            )
            client.chat_postMessage(channel=channel, thread_ts=root_ts,
                                    text=f"<@{user}>: {outcome.message}")
            return
        log.info("job %s: %s by %s refused: %s", job.job_id, decision, user, outcome.message)
        job = jobs.get_job(deps.db, job.job_id) or job  # as it stands now, after any claim
        if job.status == JobStatus.expired and root_ts:
            # The quote ran out before anyone decided: its buttons go now, for everyone.
            client.chat_update(channel=channel, ts=root_ts, text=f"{job.job_id}: quote expired",
                               blocks=expired_blocks(job))
        tell(body, context, ephemeral(error_blocks(outcome.message), outcome.message))
