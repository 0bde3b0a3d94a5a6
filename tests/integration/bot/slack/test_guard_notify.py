"""SlackNotifier's spend-guard messages against the fake Slack: the progress message posted once and
then edited in place, the warning broadcast with its buttons, the recovery question, the cap
notice, and the final report with its chart uploaded into the thread."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.support.slack_harness import CHANNEL, REQUESTER
from tests.support.slack_values import notify_view as view
from tests.support.slack_values import progress, warning

ROOT = "1700000001.000100"


def notifier():
    from bot.slack.notifier import SlackNotifier
    from schemas.settings import get_settings

    return SlackNotifier(get_settings())


def buttons(call) -> list[str]:
    return [e["action_id"] for b in call.blocks() if b["type"] == "actions" for e in b["elements"]]


def test_progress_is_posted_once_then_updated_in_place(slack_env, fake_slack):
    fake_slack.reset()
    slack, job = notifier(), view()
    ref = slack.progress(job, progress(step=10), None)
    post = fake_slack.wait_for("chat.postMessage")[0]
    assert post.body["thread_ts"] == ROOT and "reply_broadcast" not in post.body
    assert ref and "step 10/1,000" in json.dumps(post.blocks())

    again = slack.progress(job, progress(step=500, spent_usd=progress().cap_usd / 2), ref)
    assert again == ref
    update = fake_slack.wait_for("chat.update")[0]
    assert update.body["ts"] == ref and update.body["channel"] == CHANNEL
    assert "step 500/1,000" in json.dumps(update.blocks())
    assert len(fake_slack.of("chat.postMessage")) == 1, "an update, not a second message"


def test_progress_whose_message_is_gone_is_posted_again(slack_env, fake_slack):
    fake_slack.reset()
    fake_slack.fail_once["chat.update"] = "message_not_found"
    ref = notifier().progress(view(), progress(), "1700000000.999999")
    assert ref and ref != "1700000000.999999"
    assert len(fake_slack.of("chat.postMessage")) == 1


def test_progress_for_a_job_without_a_channel_posts_nothing(slack_env, fake_slack):
    fake_slack.reset()
    assert notifier().progress(view(channel=None, root_ts=None), progress(), None) is None
    assert not fake_slack.calls


def test_warning_is_broadcast_with_three_buttons(slack_env, fake_slack):
    fake_slack.reset()
    notifier().warning(view(), warning(requester=REQUESTER))
    call = fake_slack.wait_for("chat.postMessage")[0]
    assert call.body["thread_ts"] == ROOT and call.body["reply_broadcast"] is True
    assert buttons(call) == ["extend_cap", "stop_now", "let_run"]
    assert f"<@{REQUESTER}>" in json.dumps(call.blocks())


def test_recovery_question_and_cap_notice(slack_env, fake_slack):
    fake_slack.reset()
    slack, job = notifier(), view(status="interrupted")
    slack.ask_recovery(job, "was interrupted; the next option needs $12 and $8 remain")
    ask = fake_slack.wait_for("chat.postMessage")[0]
    assert buttons(ask) == ["continue_recovery", "stop_now"] and ask.body["thread_ts"] == ROOT

    slack.event(view(status="stopped_at_cap"), "cap_reached",
                "stopped at its cap: $50.03 spent, last checkpoint at step 400")
    notice = fake_slack.wait_for("chat.postMessage", count=2)[1]
    assert notice.body["reply_broadcast"] is True
    assert "/train resume j-abc123 budget=+50" in json.dumps(notice.blocks())


def test_report_is_broadcast_and_the_chart_uploaded_into_the_thread(slack_env, fake_slack,
                                                                      tmp_path):
    from workers.rules.report import render_chart

    start = datetime(2025, 6, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=i) for i in range(5)]
    chart = render_chart(tmp_path / "chart.png", loss=[(t, 2.0 - i / 5) for i, t in
                                                       enumerate(times)],
                         spend=[(t, i * 1.5) for i, t in enumerate(times)], cap_usd=10,
                         warn_usd=8, interruptions=[times[2]], title="j-abc123")
    fake_slack.reset()
    notifier().report(view(status="succeeded"), "*Job j-abc123 succeeded*\nCost $6.00", chart)

    post = fake_slack.wait_for("chat.postMessage")[0]
    assert post.body["reply_broadcast"] is True and post.body["thread_ts"] == ROOT
    assert "Cost $6.00" in json.dumps(post.blocks())
    asked = fake_slack.wait_for("files.getUploadURLExternal")[0]
    assert asked.authorized and int(asked.body["length"]) == chart.stat().st_size
    done = fake_slack.wait_for("files.completeUploadExternal")[0]
    assert done.body["channel_id"] == CHANNEL and done.body["thread_ts"] == ROOT
    assert "loss and cumulative spend" in done.body["initial_comment"]
    (file_id,) = [f["id"] for f in json.loads(done.body["files"])]
    assert fake_slack.uploads[file_id] == chart.read_bytes()
    assert fake_slack.uploads[file_id].startswith(b"\x89PNG\r\n\x1a\n")


def test_report_without_a_chart_uploads_nothing(slack_env, fake_slack, tmp_path):
    fake_slack.reset()
    notifier().report(view(status="failed"), "*Job j-abc123 failed*", tmp_path / "missing.png")
    fake_slack.wait_for("chat.postMessage")
    assert not fake_slack.of("files.getUploadURLExternal") and not fake_slack.uploads
