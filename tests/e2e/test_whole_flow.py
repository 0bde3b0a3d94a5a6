"""The whole flow, driven the way Slack and AWS drive it: a signed /train to the bot's HTTP
endpoint → the quote in the channel → a signed Approve click → a spot instance in moto → the
agent (a local process standing in for the instance) training on the tiny model against moto's
S3 → progress in the thread → a spot notice from the instance's metadata service and AWS taking
the instance back → the interruption notice → recovery on a second instance from the last
checkpoint → the spend warning → success → the final report with the chart uploaded.

Money: p5.48xlarge spot at $17.60/h. EC2 bills 60 s at least per start, so each instance costs
$0.29 from its first second: the relaunch brings the spend to $0.59, over the warning at
warn=0.1 of the $5 cap ($0.50). At 80% the cap would have to be below what the agent keeps in
reserve before its own deadline (60 s of money plus a 15 s margin), so no one-minute run could
show it; the warning path is the same at any fraction.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import APPROVER, BUCKET, CHANNEL, REQUESTER
from tests.support.stand_ins import RECLAIM, Fleet, market_prices, reclaims

# A whole training run, interrupted and resumed: on a loaded 2-core machine it outlasts the
# suite's 300 s per-test limit (pyproject) while making progress; its waits catch a real hang.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
# Long enough (hundreds of steps after the first checkpoint at step 50) that the agent's 5 s
# notice poll sees the spot notice before the run ends, on a loaded machine too.
TEXT = ("sft model=tiny data=demo samples=400 epochs=120 seq_len=256 precision=fp32 "
        "instance=p5.48xlarge spot=yes budget=5 warn=0.1")
PNG = b"\x89PNG\r\n\x1a\n"


def deadline_s(timeout: float) -> float:
    from tests.support.waiting import deadline_s as hang

    return hang(timeout)  # an agent's whole run on a loaded machine: a hang's deadline


def wait(predicate, timeout: float, what: str):
    from tests.support.waiting import wait_for

    return wait_for(predicate, timeout=timeout, what=what)


@pytest.fixture
def aws(e2e_env, moto_reset, monkeypatch):
    """A clean moto with the store's bucket and an AMI; market spot prices; reclaims."""
    import boto3

    from schemas.settings import get_settings

    ec2 = boto3.client("ec2", region_name="us-east-1")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("TRAINOPS_AWS_AMI",
                       ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"])
    get_settings.cache_clear()
    market_prices(monkeypatch)
    return ec2, reclaims(monkeypatch)


@pytest.fixture
def bot(e2e_env, fake_slack, e2e_worker, aws):
    from bot.slack.app import build_app
    from schemas.config import cached_config
    from schemas.db.database import get_database
    from schemas.settings import get_settings
    from tests.support.slack_harness import serve

    settings = get_settings()
    db = get_database(settings)
    app = build_app(settings, cached_config(settings.config_path), db, celery=e2e_worker)
    fake_slack.reset()
    handle, server = serve(app, fake_slack, db)
    yield handle
    server.shutdown()
    server.server_close()


@pytest.fixture
def fleet(e2e_env, aws):
    machines = Fleet(BUCKET, e2e_env["tmp"]).start()
    yield machines
    machines.stop()


def _thread(slack, root_ts: str) -> list:
    return [c for c in slack.of("chat.postMessage") if c.body.get("thread_ts") == root_ts]


def _texts(calls) -> str:
    return "\n".join(str(c.body.get("text", "")) + json.dumps(c.blocks(), ensure_ascii=False)
                     for c in calls)


def test_quote_approve_launch_progress_warning_interruption_recovery_report(
        bot, fleet, beat, aws, e2e_env):
    from schemas.store import open_store
    from workers.state.jobs import get_job

    ec2, reclaimed = aws
    slack = bot.slack

    # /train, signed, to the real endpoint: an ephemeral ack, then the quote in the channel.
    answer = bot.command(TEXT, user=REQUESTER)
    assert answer["response_type"] == "ephemeral"
    quote = slack.wait_for("chat.postMessage", where=lambda c: "thread_ts" not in c.body,
                           timeout=20)[0]
    actions = [b for b in quote.blocks() if b["type"] == "actions"][0]["elements"]
    job_id = actions[0]["value"]
    assert {a["action_id"] for a in actions} >= {"approve", "reject"}
    job = wait(lambda: (j := get_job(bot.app_db, job_id)) and j.root_ts and j, 10, "root")
    assert "p5.48xlarge" in _texts([quote])

    # Approve, signed, by the requester (within budget): the buttons go, a machine starts.
    assert bot.click("approve", job_id, REQUESTER, job.root_ts) == 200
    assert slack.wait_for("chat.update", where=lambda c: c.body.get("ts") == job.root_ts)
    first = wait(lambda: fleet.of(1), 30, "the first instance in moto")

    # Progress: the card is posted in the thread (then edited in place).
    wait(lambda: [c for c in _thread(slack, job.root_ts)
                  if str(c.body.get("text", "")).startswith(f"{job_id}: step")],
         30, "a progress card in the thread")

    # A verified checkpoint in moto's S3, then AWS's notice and the reclaim.
    store = open_store(e2e_env["TRAINOPS_STORE"])
    wait(lambda: [k for k in store.list(f"jobs/{job_id}/checkpoints/")
                  if k.endswith("MANIFEST.json")], 40, "a checkpoint in S3")
    first.imds.notice()
    assert first.proc.wait(deadline_s(30)) == 3, "the agent exits 3 (interrupted) on a spot notice"
    reclaimed.add(first.instance_id)
    ec2.terminate_instances(InstanceIds=[first.instance_id])

    # Recovery: a second instance, a second agent resuming from the checkpoint.
    def answer_ask():  # if recovery asks instead of relaunching, an approver continues
        asks = [c for c in _thread(slack, job.root_ts) if "continue_recovery" in _texts([c])]
        if asks and not fleet.of(2):
            bot.click("continue_recovery", job_id, APPROVER, job.root_ts)
        return fleet.of(2)

    second = wait(answer_ask, 40, "the second instance")
    assert second.proc.wait(deadline_s(60)) == 0, "the resumed agent succeeds"
    wait(lambda: get_job(bot.app_db, job_id).status.value == "succeeded", 20, "succeeded")
    wait(lambda: slack.of("files.completeUploadExternal"), 20, "the chart uploaded")

    # What reached Slack: every line in the job's thread, the warning and the report broadcast.
    thread = _thread(slack, job.root_ts)
    said = _texts(thread)
    for words in ("interrupt", "recover", "step"):
        assert words in said.lower(), f"{words!r} never reached the thread"
    broadcast = [c for c in thread if str(c.body.get("reply_broadcast")).lower() == "true"]
    assert any(f"<@{REQUESTER}>" in _texts([c]) and "extend_cap" in _texts([c])
               for c in broadcast), "the warning, broadcast, naming the requester, with buttons"
    assert any("succeeded" in _texts([c]) for c in broadcast), "the report, broadcast"
    upload_calls = slack.of("upload")
    assert upload_calls and any(data.startswith(PNG) for data in slack.uploads.values())
    complete = slack.of("files.completeUploadExternal")[-1]
    assert complete.body.get("thread_ts") == job.root_ts and complete.body["channel_id"] == CHANNEL
    assert all(c.authorized for c in slack.calls if c.method not in ("response_url", "upload"))

    # What reached moto: two spot instances tagged with the job and attempts 1, 2; both gone.
    found = ec2.describe_instances(Filters=[{"Name": "tag:trainops:job", "Values": [job_id]}])
    insts = [i for r in found["Reservations"] for i in r["Instances"]]
    tags = sorted(int({t["Key"]: t["Value"] for t in i["Tags"]}["trainops:attempt"]) for i in insts)
    assert tags == [1, 2]
    assert {i["InstanceType"] for i in insts} == {"p5.48xlarge"}
    assert all(i.get("InstanceLifecycle") == "spot" for i in insts)
    wait(lambda: all(i["State"]["Name"] == "terminated" for r in ec2.describe_instances(
        InstanceIds=[i["InstanceId"] for i in insts])["Reservations"] for i in r["Instances"]),
        20, "both instances terminated")
    keys = store.list(f"jobs/{job_id}/")
    for key in ("spec.json", "control.json", "progress.json", "status.json",
                "reports/chart.png", "logs/attempt-1.log", "logs/attempt-2.log"):
        assert f"jobs/{job_id}/{key}" in keys, f"{key} not in S3"
    assert any(k.startswith(f"jobs/{job_id}/final/") for k in keys)
    assert any(k.endswith("MANIFEST.json") for k in keys if "/checkpoints/" in k)

    # What the database holds.
    done = get_job(bot.app_db, job_id)
    assert done.status.value == "succeeded" and done.recoveries == 1
    assert [a["attempt"] for a in done.attempts] == [1, 2]
    assert done.attempts[0]["end_reason"] == "interrupted"
    assert done.attempts[1]["end_reason"] == "succeeded"
    assert all(a["market"] == "spot" for a in done.attempts)
    kinds = [e["kind"] for e in done.events]
    for kind in ("quoted", "approved", "launched", "warning", "interrupted", "recovering",
                 "succeeded", "report"):
        assert kind in kinds, f"no {kind!r} event: {kinds}"
    assert kinds.index("interrupted") < kinds.index("recovering") < kinds.index("succeeded")
    # Metered, not guessed: two starts of at least 60 s each at $17.60/h, plus disk.
    assert done.spend_usd >= 2 * 60 * 17.60 / 3600
    assert done.approved_by == REQUESTER
    # The first instance reads, to the provider, the way EC2 reports a spot reclaim.
    from schemas.settings import get_settings
    from workers.providers.aws import AwsProvider

    lost = AwsProvider(get_settings()).describe([first.instance_id])[first.instance_id]
    assert lost.interrupted and lost.state_reason.startswith(RECLAIM)
