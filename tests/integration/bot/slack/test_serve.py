"""`trainops serve --http` as a real process, and the app manifest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bot.slack.serve import EVENTS_PATH
from tests.support.slack_harness import Bot

ROOT = Path(__file__).resolve().parents[4]


def test_trainops_serve_http_answers_signed_requests_only(slack_env, fake_slack, database,
                                                          tmp_path):
    env = {**os.environ, "TRAINOPS_DATABASE_URL": database.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "serve", "--http", "--host", "127.0.0.1",
         "--port", "0"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + 30
        log_lines = []
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            log_lines.append(line)
            if found := re.search(r"serving Slack over HTTP on 127\.0\.0\.1:(\d+)", line):
                port = int(found.group(1))
        assert port, f"server did not start: {log_lines}"
        bot = Bot(f"http://127.0.0.1:{port}{EVENTS_PATH}", fake_slack, None, database)
        status, body = bot.post(bot.command_body("help"))
        assert status == 200 and json.loads(body)["response_type"] == "ephemeral"
        status, _ = bot.post(bot.command_body("help"), timestamp=int(time.time()) - 3600)
        assert status == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        leftover = proc.stderr.read()
    assert slack_env["SLACK_BOT_TOKEN"] not in leftover + "".join(log_lines)


def test_manifest_declares_the_command_buttons_socket_mode_and_only_used_scopes():
    manifest = yaml.safe_load((ROOT / "bot" / "slack" / "manifest.yaml").read_text())
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == ["/train"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    # The scopes are exactly those the Web API methods we call need (plus the slash command).
    needs = {"chat_postMessage": "chat:write", "chat_update": "chat:write",
             "chat_postEphemeral": "chat:write", "files_upload_v2": "files:write"}
    used = set()
    for path in (ROOT / "bot").rglob("*.py"):  # Slack's Web API is called from bot/ alone
        used |= set(re.findall(r"\.(chat_\w+|files_\w+|conversations_\w+|users_\w+)\(",
                               path.read_text()))
    assert used <= set(needs), f"a new Web API method needs its scope in the manifest: {used}"
    assert "files_upload_v2" in used, "the report chart is uploaded"
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert sorted(scopes) == sorted({"commands", *(needs[m] for m in used)})
