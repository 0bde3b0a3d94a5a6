"""Findings 5 and 6: text from agents and people reached Slack unescaped (`<!channel>` in a data
path pinged the whole channel from "the agent failed: …"), and `data=` read any host path or
any bucket with the worker's credentials.

Now every Slack message escapes what agents and people wrote, and `data=` must lie under the
team's roots ([data] local_roots / s3_prefixes), checked at the quote (one line) and again by
the agent."""

from __future__ import annotations

import json

from schemas.settings import get_settings
from tests.support.agent import Job, agent_env, file_store, token_cache  # noqa: F401
from tests.support.slack_harness import APPROVER, quoted
from training.agent.main import run
from workers.state.jobs import list_jobs

MENTIONS = ("<!channel>", "<!here>", "<@U123>")


def test_data_outside_the_roots_is_refused_at_the_quote(bot, database):
    before = len(list_jobs(database, limit=1000))
    for data, words in (("/etc/passwd", "outside the folders this team allows"),
                        ("s3://someone-elses-bucket/x", "outside the S3 locations"),
                        ("../../etc/shadow.jsonl", "outside the folders")):
        answer = bot.command(f"sft smoke model=tiny data={data}")
        assert answer["response_type"] == "ephemeral" and words in answer["text"], data
        assert "s3://team-data/train" in answer["text"]  # and says what is allowed
    assert len(list_jobs(database, limit=1000)) == before


def test_the_agent_checks_the_roots_again(file_store, tmp_path):  # noqa: F811
    job = Job(file_store, "j-passwd", data="/etc/passwd", data_local_roots=[str(tmp_path)],
              data_s3_prefixes=[])
    assert run(job.uri, tmp_path / "w") == 2
    status = job.read("status.json")
    assert status["state"] == "failed" and "outside the folders" in status["error"]
    assert "root:" not in job.log()  # nothing of the file was read


def test_mentions_in_agent_failures_are_shown_not_sent(bot, beat, sec_env):
    root = sec_env["tmp"] / "data"
    data = f"{root}/<!channel> <!here> <@U123>.jsonl"
    job, post = quoted(bot, f"sft smoke model=tiny budget=50 data='{data}'")
    assert not any(m in json.dumps(post.blocks()) for m in MENTIONS)
    bot.click("approve", job.job_id, APPROVER, job.root_ts)
    failed = bot.slack.wait_for(
        "chat.postMessage", timeout=180,
        where=lambda c: c.body.get("thread_ts") == job.root_ts
        and "agent failed" in str(c.body.get("text")))[0]
    text = str(failed.body.get("text")) + json.dumps(failed.blocks())
    assert "&lt;!channel&gt;" in text
    for call in bot.slack.calls:
        sent = json.dumps(call.body)
        assert not any(m in sent for m in MENTIONS), (call.method, sent[:300])
    # Finding 10: not on EC2, the agent never polls the metadata service at all.
    host_log = _host_log(job.job_id)
    assert "agent starts" in host_log and "instance metadata" not in host_log


def _host_log(job_id: str) -> str:
    """The local agent's own log: it never polled the EC2 metadata service (finding 10)."""
    from pathlib import Path

    path = Path(get_settings().store.removeprefix("file://")) / ".local-instances" / \
        f"{job_id}-1.log"
    return path.read_text()
