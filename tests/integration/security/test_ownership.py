"""Finding 3: anyone could cancel anyone's job from any channel, and `jobs`, `status` and
`resume` showed and copied other people's jobs (their command= strings included).

Now: cancel, stop, extend, resume and a job's status are for its requester or an approver, in the
job's channel (or a DM); `jobs` lists the caller's own jobs (approvers see all); every refusal
is an ephemeral line and an audit event on the job."""

from __future__ import annotations

import json

from tests.support.slack_harness import APPROVER, BYSTANDER, REQUESTER, quoted
from workers.state.jobs import get_job

OTHER_CHANNEL = "C0ELSEWHERE"


def _refusals(bot, job_id: str) -> list[dict]:
    return [e for e in get_job(bot.app_db, job_id).events if e["kind"] == "access_refused"]


def test_only_the_requester_or_an_approver_in_the_jobs_channel(bot):
    job, _ = quoted(bot)
    jid = job.job_id

    for text, what in ((f"cancel {jid}", "cancel"), (f"status {jid}", "see the status of"),
                       (f"resume {jid}", "resume")):
        answer = bot.command(text, user=BYSTANDER)
        assert answer["response_type"] == "ephemeral", text
        assert f"only the requester or an approver can {what} {jid}" in answer["text"], text
    assert get_job(bot.app_db, jid).status.value == "awaiting_approval"

    # The stop button, clicked by a bystander: refused in an ephemeral line.
    bot.click("stop_now", jid, BYSTANDER, job.root_ts, block_id=f"warning:{jid}:50")
    refusal = bot.slack.wait_for("response_url")[0].json
    assert refusal["response_type"] == "ephemeral" and "only the requester" in refusal["text"]

    # The requester, from a channel the job does not live in.
    answer = bot.command(f"cancel {jid}", user=REQUESTER, channel=OTHER_CHANNEL)
    assert "in its own channel" in answer["text"]
    assert get_job(bot.app_db, jid).status.value == "awaiting_approval"

    refused = _refusals(bot, jid)
    assert [e["actor"] for e in refused] == [BYSTANDER] * 4 + [REQUESTER], refused

    # `jobs`: a bystander sees none of it; the requester and an approver do.
    assert jid not in json.dumps(bot.command("jobs", user=BYSTANDER))
    assert jid not in json.dumps(bot.command("status", user=BYSTANDER))
    assert jid in json.dumps(bot.command("jobs", user=REQUESTER))
    assert jid in json.dumps(bot.command("jobs", user=APPROVER))

    # The requester in the job's own channel may cancel it; a DM works for the approver.
    answer = bot.command(f"status {jid}", user=APPROVER, channel="D0APPROVERDM")
    assert jid in json.dumps(answer) and "only the requester" not in answer["text"]
    answer = bot.command(f"cancel {jid}", user=REQUESTER)
    assert "cancelled" in answer["text"]
    assert get_job(bot.app_db, jid).status.value == "cancelled"
