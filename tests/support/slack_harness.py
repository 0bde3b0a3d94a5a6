"""Helpers the Slack tests share: who is who, the secrets of this run, and a Slack that signs
what it sends to the bot's real HTTP endpoint."""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.support.fake_slack import FakeSlack
from tests.support.services import REDIS_DBS, redis_url  # noqa: F401 - redis_url re-exported

REDIS_DB = REDIS_DBS["slack"]  # this area's own Redis database (tests/support/services.py)
CHANNEL, REQUESTER, APPROVER, BYSTANDER = "C0TEST", "UREQUESTER", "UAPPROVER", "UBYSTANDER"
SMALL = "sft smoke model=tiny budget=50"  # fits its budget: the requester may approve
# A team's own data (a Hub id: its size unknown here, so 10,000 samples are quoted); cheapest
# feasible ≈ $1.29: over budget, needs an approver. On the bundled demo set it would fit.
OVER = "sft full model=7B data=acme/support-tickets budget=1"
# Random per run, so a test can grep every log line for them.
BOT_TOKEN = "xoxb-" + secrets.token_hex(12)
SIGNING_SECRET = secrets.token_hex(16)


@dataclass
class Bot:
    """The real HTTP endpoint of `trainops serve`, and a Slack that signs what it sends."""

    url: str
    slack: FakeSlack
    app: object
    app_db: object
    secret: str = SIGNING_SECRET

    def post(self, body: str, *, timestamp: int | None = None, signature: str | None = None,
             content_type: str = "application/x-www-form-urlencoded") -> tuple[int, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sig = signature or SignatureVerifier(self.secret).generate_signature(timestamp=ts,
                                                                             body=body)
        req = urllib.request.Request(self.url, data=body.encode(), method="POST", headers={
            "Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sig})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def command_body(self, text: str, user: str = REQUESTER, channel: str = CHANNEL) -> str:
        return urlencode({
            "token": "legacy-verification-token", "team_id": "T0TEST", "team_domain": "test",
            "channel_id": channel, "channel_name": "ml-runs", "user_id": user,
            "user_name": user.lower(), "command": "/train", "text": text, "api_app_id": "A0TEST",
            "response_url": f"{self.slack.url}/response/command",
            # Unique per invocation, as Slack's are (two sends of one body are a replay).
            "trigger_id": f"1.2.{secrets.token_hex(6)}",
        })

    def command(self, text: str, user: str = REQUESTER, channel: str = CHANNEL) -> dict:
        status, body = self.post(self.command_body(text, user, channel))
        assert status == 200, (status, body)
        return json.loads(body) if body else {}

    def click_body(self, action_id: str, job_id: str, user: str, root_ts: str | None, *,
                   blocks: list | None = None, block_id: str | None = None) -> str:
        """A block_actions payload as Slack sends it: `root_ts` is the clicked message's ts and
        `blocks` its blocks (Slack echoes the whole message back with a click)."""
        payload = {
            "type": "block_actions", "api_app_id": "A0TEST", "token": "legacy-verification-token",
            "team": {"id": "T0TEST", "domain": "test"},
            "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
            "channel": {"id": CHANNEL, "name": "ml-runs"},
            "container": {"type": "message", "message_ts": root_ts, "channel_id": CHANNEL,
                          "is_ephemeral": False},
            "message": {"type": "message", "ts": root_ts, "text": "quote",
                        **({"blocks": blocks} if blocks is not None else {})},
            "trigger_id": f"1.2.{secrets.token_hex(6)}",
            "response_url": f"{self.slack.url}/response/action",
            "actions": [{"type": "button", "action_id": action_id,
                         "block_id": block_id or f"decide:{job_id}",
                         "value": job_id, "action_ts": str(time.time())}],
        }
        return urlencode({"payload": json.dumps(payload)})

    def click(self, action_id: str, job_id: str, user: str, root_ts: str | None = None,
              **message) -> int:
        status, _ = self.post(self.click_body(action_id, job_id, user, root_ts, **message))
        return status


def wait_until(predicate, timeout: float | None = None, what: str = "condition"):
    """tests/support/waiting.py's wait, polling faster (Slack round trips are quick)."""
    from tests.support.waiting import wait_for

    return wait_for(predicate, timeout=timeout, interval=0.05, what=what)


def quoted(bot, text: str = SMALL):
    """/train TEXT, then wait for the worker's quote message; returns (job, the post call)."""
    from workers.state.jobs import get_job

    answer = bot.command(text)
    assert answer["response_type"] == "ephemeral" and "Quoting" in answer["text"]
    post = bot.slack.wait_for("chat.postMessage", where=lambda c: "thread_ts" not in c.body)[-1]
    actions = [b for b in post.blocks() if b["type"] == "actions"]
    job_id = actions[0]["elements"][0]["value"]
    job = wait_until(lambda: (j := get_job(bot.app_db, job_id)) and j.root_ts and j,
                     what="root message recorded")
    return job, post


def buttons(post) -> dict[str, str]:
    actions = [b for b in post.blocks() if b["type"] == "actions"]
    return {e["action_id"]: e["value"] for a in actions for e in a["elements"]}


def _job(bot, job_id):
    from workers.state.jobs import get_job

    return get_job(bot.app_db, job_id)

def serve(app, fake_slack, db) -> tuple[Bot, object]:
    from bot.slack.serve import EVENTS_PATH, SlackHTTPServer

    server = SlackHTTPServer(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Bot(f"http://127.0.0.1:{server.port}{EVENTS_PATH}", fake_slack, app, db), server
