"""Finding 1: `command=` was anyone's shell on the worker host, with the worker's secrets.

Now: off unless trainops.toml allows it (ephemeral line), shown verbatim in the quote, approved
only by an approver, run with an allow-listed environment, and whatever it prints is redacted
before it reaches Slack, status.json or the events table."""

from __future__ import annotations

import json

from schemas.config import load_config
from schemas.settings import get_settings
from schemas.store import job_prefix, open_store
from tests.integration.security.conftest import AWS_KEY_ID, AWS_SECRET, make_bot
from tests.support.slack_harness import (
    APPROVER,
    BOT_TOKEN,
    CHANNEL,
    REQUESTER,
    SIGNING_SECRET,
    quoted,
    wait_until,
)
from workers.state.jobs import get_job, list_jobs

ATTACK = ('sft smoke model=tiny budget=50 command="echo token=$SLACK_BOT_TOKEN '
          'awskey=$AWS_SECRET_ACCESS_KEY signing=$SLACK_SIGNING_SECRET id=$AWS_ACCESS_KEY_ID '
          'db=$TRAINOPS_DATABASE_URL; exit 1"')
SECRETS = (BOT_TOKEN, SIGNING_SECRET, AWS_SECRET, AWS_KEY_ID)


def test_command_is_off_unless_the_team_allows_it(worker, fake_slack, database):
    bot, server = make_bot(worker, fake_slack, database, config=load_config(None))
    try:
        before = len(list_jobs(database, limit=1000))
        answer = bot.command(ATTACK)
        assert answer["response_type"] == "ephemeral"
        assert "allow_commands = true" in answer["text"] and "command=" in answer["text"]
        assert len(list_jobs(database, limit=1000)) == before, "no job for a refused command"
    finally:
        server.shutdown()
        server.server_close()


def _everything_written(job_id: str, fake_slack) -> str:
    """Every byte that left the process about this job: what reached Slack, the job's store
    files (status.json, logs, progress) and its events."""
    settings = get_settings()
    root = open_store(settings.store).root / job_prefix(job_id)
    files = "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())
    slack = "\n".join(json.dumps(c.body) for c in fake_slack.calls)
    events = "\n".join(e["message"] or "" for e in get_job_events(job_id))
    return "\n".join((files, slack, events))


def get_job_events(job_id: str) -> list[dict]:
    from schemas.db.database import get_database

    return get_job(get_database(get_settings()), job_id).events


def test_custom_command_needs_an_approver_and_sees_no_secret(bot, beat, database):
    job, post = quoted(bot, ATTACK)
    shown = json.dumps(post.blocks())
    assert "runs custom code" in shown and "echo token=$SLACK_BOT_TOKEN" in shown

    # The requester is no approver: their own click cannot run their code, whatever it costs.
    bot.click("approve", job.job_id, REQUESTER, job.root_ts)
    refusal = bot.slack.wait_for("response_url")[0].json
    assert refusal["response_type"] == "ephemeral" and "only an approver" in refusal["text"]
    assert get_job(database, job.job_id).status.value == "awaiting_approval"

    bot.click("approve", job.job_id, APPROVER, job.root_ts)
    failed = bot.slack.wait_for(
        "chat.postMessage", timeout=120,
        where=lambda c: c.body.get("thread_ts") == job.root_ts
        and "agent failed" in str(c.body.get("text")))[0]
    assert failed.body["channel"] == CHANNEL

    # The command ran (its output is in the attempt's log in the store) but saw none of the
    # worker's secrets; the agent's own log on the host has none either.
    store = open_store(get_settings().store)
    shipped = f"{job_prefix(job.job_id)}/logs/attempt-1.log"
    wait_until(lambda: b"token= awskey= signing= id= db=" in (store.read_bytes(shipped) or b""),
               what="the command's output (with empty secrets) in the attempt log")
    host_log = store.root / ".local-instances" / f"{job.job_id}-1.log"
    ran = host_log.read_text()
    everything = _everything_written(job.job_id, bot.slack) + ran
    leaked = [name for name, value in zip(("bot token", "signing secret", "AWS secret",
                                           "AWS key id"), SECRETS, strict=True)
              if value in everything]
    assert not leaked, f"leaked: {leaked}"
    # nor the control plane's database URL (whichever database this run is on)
    assert not [url for url in ("sqlite:///", "postgresql", database.url) if url in everything]
