"""What must hold when things go wrong: secrets never logged, errors as one ephemeral line with a
reference, access rules, 429s retried, expired quotes losing their buttons, missing settings."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from tests.support.slack_harness import (
    APPROVER,
    BOT_TOKEN,
    REQUESTER,
    SIGNING_SECRET,
    SMALL,
    _job,
    quoted,
    serve,
)


def test_tokens_and_secrets_never_reach_a_log_line(bot, caplog):
    caplog.set_level(logging.DEBUG)  # slack_sdk and Bolt log requests at debug
    job, _ = quoted(bot)
    bot.click("approve", job.job_id, REQUESTER, job.root_ts)
    bot.slack.wait_for("chat.update")
    bot.command("status j-nothere")
    bot.post(bot.command_body("jobs"), signature="v0=forged")
    assert len(caplog.records) > 20, "debug logging must have been on"
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert BOT_TOKEN not in text and SIGNING_SECRET not in text


def test_unexpected_error_is_a_reference_not_a_traceback(bot, caplog):
    broken = bot.app_db.__class__("sqlite:////nonexistent-dir/none.db")
    from bot.slack.app import build_app
    from schemas.config import cached_config
    from schemas.settings import get_settings

    settings = get_settings()
    app = build_app(settings, cached_config(settings.config_path), broken, celery=None)

    handle, server = serve(app, bot.slack, broken)
    try:
        answer = handle.command("jobs")
    finally:
        server.shutdown()
        server.server_close()
    shown = json.dumps(answer)
    assert answer["response_type"] == "ephemeral" and "ref `" in shown
    assert "Traceback" not in shown and "sqlite" not in shown.lower()
    ref = shown.split("ref `")[1][:8]
    logged = [r for r in caplog.records if ref in r.getMessage()]
    assert logged and logged[0].exc_info, "the full error is in the log under the reference"


def test_access_rules_refuse_other_channels_and_users(bot):
    from bot.slack.app import build_app
    from schemas.config import cached_config
    from schemas.settings import get_settings

    settings = get_settings()
    config = cached_config(settings.config_path)
    config = config.model_copy(update={"access": config.access.model_copy(
        update={"allowed_channels": ["C0OTHER"], "allowed_users": [REQUESTER]})})

    handle, server = serve(build_app(settings, config, bot.app_db), bot.slack, bot.app_db)
    try:
        refused = handle.command("jobs")  # right user, wrong channel
        allowed = handle.command("jobs", channel="C0OTHER")
        stranger = handle.command("jobs", user="USTRANGER", channel="C0OTHER")
        approver = handle.command("jobs", user=APPROVER, channel="C0OTHER")
    finally:
        server.shutdown()
        server.server_close()
    assert "not enabled in this channel" in refused["text"]
    assert "Live jobs" in json.dumps(allowed["blocks"])
    assert "not on trainops' list" in stranger["text"]
    assert "Live jobs" in json.dumps(approver["blocks"])


def test_rate_limited_update_is_retried(bot):
    job, _ = quoted(bot)
    bot.slack.rate_limit_once.add("chat.update")
    bot.click("approve", job.job_id, REQUESTER, job.root_ts)
    updates = bot.slack.wait_for("chat.update", count=2)
    assert updates[0].body == updates[1].body


def test_click_on_an_expired_quote_removes_its_buttons(bot):
    from schemas.config import cached_config
    from schemas.settings import get_settings
    from workers.quoting import make_quote
    from workers.state.jobs import open_job, set_root_message

    settings = get_settings()
    config = cached_config(settings.config_path)
    from bot.grammar.commands import parse_request

    quote = make_quote(parse_request(SMALL, config), config, live=False)
    job_id = open_job(bot.app_db, quote, REQUESTER, "C0TEST", ttl_h=1e-9)
    set_root_message(bot.app_db, job_id, "C0TEST", "1700000000.000001")
    bot.click("approve", job_id, REQUESTER, "1700000000.000001")
    update = bot.slack.wait_for("chat.update")[0]
    assert "Quote expired" in json.dumps(update.blocks())
    assert not [b for b in update.blocks() if b["type"] == "actions"]
    assert "expired" in bot.slack.wait_for("response_url")[0].json["text"]
    assert _job(bot, job_id).status.value == "expired"


def test_a_forged_button_value_is_refused(bot):
    bot.click("approve", "../../etc/passwd", REQUESTER, "1.2")
    assert "does not name a job" in bot.slack.wait_for("response_url")[0].json["text"]
    bot.click("approve", "j-ffffff", REQUESTER, "1.2")
    assert "does not exist" in bot.slack.wait_for("response_url", count=2)[1].json["text"]


def test_serve_without_tokens_is_one_clear_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["TRAINOPS_DATABASE_URL"] = f"sqlite:///{tmp_path}/t.db"
    proc = subprocess.run([sys.executable, "-m", "bot.cli.main", "serve", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET not set" in lines[0]


def test_worker_reports_a_quote_it_cannot_post(bot):
    bot.slack.fail_once["chat.postMessage"] = "not_in_channel"
    bot.command(SMALL)
    told = bot.slack.wait_for("response_url")[0].json
    assert told["response_type"] == "ephemeral" and "/invite" in told["text"]
