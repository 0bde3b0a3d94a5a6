"""The bot end to end: signed requests to the real HTTP endpoint, a real Celery worker on Redis
doing the quoting, and a fake Slack Web API that records what reached it."""

from __future__ import annotations

import json
import threading
import time

from tests.support.slack_harness import (
    APPROVER,
    BYSTANDER,
    CHANNEL,
    OVER,
    REQUESTER,
    SMALL,
    _job,
    buttons,
    quoted,
)


def test_command_posts_a_quote_with_buttons(bot):
    job, post = quoted(bot)
    assert post.authorized and post.body["channel"] == CHANNEL
    assert buttons(post) == {"approve": job.job_id, "reject": job.job_id}
    text = json.dumps(post.blocks())
    assert "Recommended" in text and "Phases" in text and "catalog prices" in text
    assert job.status.value == "awaiting_approval" and job.requester == REQUESTER
    assert job.root_ts == post.body.get("ts", job.root_ts) and job.channel == CHANNEL


def test_requester_approves_within_budget(bot):
    job, _ = quoted(bot)
    assert bot.click("approve", job.job_id, REQUESTER, job.root_ts) == 200
    update = bot.slack.wait_for("chat.update")[0]
    assert update.body["ts"] == job.root_ts
    blocks = update.blocks()
    assert not [b for b in blocks if b["type"] == "actions"], "buttons must go"
    assert f"Approved* by <@{REQUESTER}>" in json.dumps(blocks)
    after = _job(bot, job.job_id)
    assert after.status.value != "awaiting_approval" and after.approved_by == REQUESTER
    assert any(e["kind"] == "approved" and e["actor"] == REQUESTER for e in after.events)
    thread = bot.slack.wait_for("chat.postMessage", where=lambda c: c.body.get("thread_ts"))
    assert thread[0].body["thread_ts"] == job.root_ts


def test_reject(bot):
    job, _ = quoted(bot)
    assert bot.click("reject", job.job_id, REQUESTER, job.root_ts) == 200
    update = bot.slack.wait_for("chat.update")[0]
    assert "Rejected* by" in json.dumps(update.blocks())
    assert _job(bot, job.job_id).status.value == "rejected"


def test_overrun_needs_an_approver(bot):
    job, post = quoted(bot, OVER)
    assert "over budget by $" in json.dumps(post.blocks())
    assert bot.click("approve", job.job_id, REQUESTER, job.root_ts) == 200
    refusal = bot.slack.wait_for("response_url")[0]
    assert refusal.json["response_type"] == "ephemeral"
    assert "approver" in refusal.json["text"]
    assert _job(bot, job.job_id).status.value == "awaiting_approval"
    assert not bot.slack.of("chat.update")

    assert bot.click("approve", job.job_id, APPROVER, job.root_ts) == 200
    bot.slack.wait_for("chat.update")
    after = _job(bot, job.job_id)
    assert after.approved_by == APPROVER and after.status.value != "awaiting_approval"


def test_bystander_cannot_approve(bot):
    job, _ = quoted(bot)
    bot.click("approve", job.job_id, BYSTANDER, job.root_ts)
    assert "requester or an approver" in bot.slack.wait_for("response_url")[0].json["text"]
    assert _job(bot, job.job_id).status.value == "awaiting_approval"


def test_five_concurrent_clicks_make_one_approval(bot):
    job, _ = quoted(bot)
    start = threading.Barrier(5)
    statuses: list[int] = []

    def click():
        start.wait()
        statuses.append(bot.click("approve", job.job_id, APPROVER, job.root_ts))

    threads = [threading.Thread(target=click) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 5
    refusals = bot.slack.wait_for("response_url", count=4)
    time.sleep(0.3)  # let any (wrong) extra update arrive before counting
    assert len(bot.slack.of("chat.update")) == 1
    assert len(refusals) == 4 and all("already approved" in r.json["text"] for r in refusals)
    after = _job(bot, job.job_id)
    assert [e["kind"] for e in after.events].count("approved") == 1


def test_cancel_a_quoted_job(bot):
    job, _ = quoted(bot)
    answer = bot.command(f"cancel {job.job_id}")
    assert answer["response_type"] == "ephemeral" and "cancelled" in answer["text"]
    thread = bot.slack.wait_for("chat.postMessage", where=lambda c: c.body.get("thread_ts"))
    assert "Cancelled by" in thread[0].body["text"]
    update = bot.slack.wait_for("chat.update")[0]
    assert not [b for b in update.blocks() if b["type"] == "actions"]
    assert _job(bot, job.job_id).status.value == "cancelled"
    # A click on the cancelled job's old buttons explains itself.
    bot.click("approve", job.job_id, REQUESTER, job.root_ts)
    assert "cancelled" in bot.slack.wait_for("response_url")[0].json["text"]


def test_status_and_jobs(bot):
    job, _ = quoted(bot)
    status = bot.command(f"status {job.job_id}")
    assert status["response_type"] == "ephemeral"
    assert job.job_id in json.dumps(status["blocks"]) and "awaiting_approval" in status["text"]
    listing = bot.command("jobs")
    assert job.job_id in json.dumps(listing["blocks"])
    unknown = bot.command("status j-000000")
    assert "no job j-000000" in json.dumps(unknown["blocks"]) and "ref `" in json.dumps(
        unknown["blocks"])


def test_parse_error_is_ephemeral_with_an_example(bot):
    answer = bot.command("sft budget=lots")
    assert answer["response_type"] == "ephemeral"
    assert "is not an amount" in answer["text"] and "Example" in answer["text"]
    assert not bot.slack.calls, "a parse error posts nothing"


def test_help(bot):
    from bot.grammar.commands import HELP_TEXT
    from bot.slack.blocks.quote import escape

    answer = bot.command("help")
    shown = "".join(b["text"]["text"] for b in answer["blocks"])
    assert all(escape(line) in shown for line in HELP_TEXT.splitlines())


def test_forged_and_stale_requests_get_401(bot):
    body = bot.command_body(SMALL)
    status, _ = bot.post(body, signature="v0=" + "0" * 64)
    assert status == 401
    status, _ = bot.post(body, timestamp=int(time.time()) - 10 * 60)
    assert status == 401
    time.sleep(0.3)
    assert not bot.slack.calls, "a refused request reaches nothing"
    status, _ = bot.post(body, content_type="application/x-www-form-urlencoded",
                         signature=None, timestamp=None)
    assert status == 200  # the same body, correctly signed, is served
    bot.slack.wait_for("chat.postMessage")
