"""SlackNotifier: the runner's news lands in the job's thread; an expired quote loses its buttons."""

from __future__ import annotations

import json

from tests.support.slack_harness import CHANNEL
from tests.support.slack_values import notify_view as view


def test_notifier_for_picks_slack_when_a_token_is_set(slack_env, fake_slack):
    from bot.slack.notifier import SlackNotifier
    from schemas.settings import get_settings
    from workers.notify import notifier_for

    fake_slack.reset()
    notifier = notifier_for(get_settings())
    assert isinstance(notifier, SlackNotifier)
    notifier.event(view(), "launched", "spot g5.xlarge in us-east-1a (i-123)")
    call = fake_slack.wait_for("chat.postMessage")[0]
    assert call.authorized and call.body["thread_ts"] == "1700000001.000100"
    assert call.body["channel"] == CHANNEL and "i-123" in call.body["text"]


def test_expired_quote_loses_its_buttons(slack_env, fake_slack):
    from bot.slack.notifier import SlackNotifier
    from schemas.settings import get_settings

    fake_slack.reset()
    SlackNotifier(get_settings()).event(view(status="expired"), "expired", "quote expired")
    update = fake_slack.wait_for("chat.update")[0]
    assert update.body["ts"] == "1700000001.000100"
    assert "Quote expired" in json.dumps(update.blocks())
    assert not [b for b in update.blocks() if b["type"] == "actions"]


def test_a_job_without_a_channel_posts_nothing(slack_env, fake_slack):
    from bot.slack.notifier import SlackNotifier
    from schemas.settings import get_settings

    fake_slack.reset()
    SlackNotifier(get_settings()).event(view(channel=None, root_ts=None), "launched", "x")
    assert not fake_slack.calls
