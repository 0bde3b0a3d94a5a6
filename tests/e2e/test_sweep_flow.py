"""A sweep, driven the way Slack and AWS drive it (issue #11): a signed `/train sft ...
sweep=learning_rate:...` → one quote pricing every run → a signed Approve → ONE instance in moto
→ the agent (a local process standing in for it) training both runs on the tiny model against
moto's S3 → the progress card listing every run → the final report comparing the runs, naming
the best with its weights, and the chart with a loss line per run.

The instance has one GPU (g5.xlarge, on-demand), so the agent, told nproc_per_node=1, trains the
runs one after the other (two waves): on the CPU stand-in that is the cheap, deterministic shape
of the same code path that runs them side by side on a bigger machine.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import BUCKET, REQUESTER
from tests.e2e.test_whole_flow import _texts, _thread, aws, bot, fleet, wait  # noqa: F401

pytestmark = pytest.mark.slow
RUNS = ("learning_rate=0.0001", "learning_rate=0.001")
TEXT = ("sft model=tiny data=demo samples=64 epochs=2 seq_len=128 precision=fp32 "
        "instance=g5.xlarge spot=no budget=5 sweep=learning_rate:1e-4,1e-3")
PNG = b"\x89PNG\r\n\x1a\n"


def test_sweep_quote_approve_one_instance_per_run_progress_comparison_report(
        bot, fleet, beat, aws, e2e_env):  # noqa: F811 - fixtures imported from the whole flow
    from schemas.job import JobSpec
    from schemas.store import open_store, read_model
    from workers.state.jobs import get_job

    ec2, _ = aws
    slack = bot.slack

    # One quote for the whole sweep: both runs listed with their GPU-hours.
    bot.command(TEXT, user=REQUESTER)
    quote = slack.wait_for("chat.postMessage", where=lambda c: "thread_ts" not in c.body,
                           timeout=20)[0]
    said = _texts([quote])
    for run in RUNS:
        assert run in said, f"the quote does not list run {run}"
    assert "GPU-hours" in said and "2 waves" in said
    job_id = [b for b in quote.blocks() if b["type"] == "actions"][0]["elements"][0]["value"]
    job = wait(lambda: (j := get_job(bot.app_db, job_id)) and j.root_ts and j, 10, "root")
    assert job.quote.recommended.instance_type == "g5.xlarge"
    assert [r["name"] for r in job.quote.recommended.runs] == list(RUNS)

    # Approve within budget: one machine for the whole sweep, told every run.
    assert bot.click("approve_on_demand", job_id, REQUESTER, job.root_ts) == 200
    try:
        machine = wait(lambda: fleet.of(1), 30, "the instance in moto")
    except AssertionError as exc:  # say what the job did instead
        events = [(e["kind"], e["message"]) for e in get_job(bot.app_db, job_id).events]
        raise AssertionError(f"{exc}; the job's events: {events}") from None
    store = open_store(e2e_env["TRAINOPS_STORE"])
    spec = read_model(store, f"jobs/{job_id}/spec.json", JobSpec)
    assert [r.name for r in spec.runs] == list(RUNS)
    assert [r.overrides for r in spec.runs] == [{"learning_rate": 1e-4},
                                                   {"learning_rate": 1e-3}]
    assert (spec.strategy, spec.nproc_per_node) == ("single", 1)

    # Progress: the card in the thread lists every run of the sweep.
    def card_with_runs():
        cards = [c for c in slack.of("chat.postMessage") + slack.of("chat.update")
                 if str(c.body.get("text", "")).startswith(f"{job_id}: step")]
        return [c for c in cards if all(run in _texts([c]) for run in RUNS)]

    wait(card_with_runs, 60, "a progress card listing both runs")
    assert machine.proc.wait(240) == 0, "the agent trains both runs and succeeds"
    wait(lambda: get_job(bot.app_db, job_id).status.value == "succeeded", 30, "succeeded")
    wait(lambda: slack.of("files.completeUploadExternal"), 30, "the chart uploaded")

    # The report compares the runs, names the best by final loss and where its weights are.
    thread = _texts(_thread(slack, job.root_ts))
    assert "Sweep of 2 runs" in thread
    assert "Best run: learning_rate=" in thread
    best = thread.split("Best run: ")[1].split(" ")[0]
    assert best in RUNS
    weights = f"jobs/{job_id}/runs/{best}/final/"
    assert weights in thread
    keys = store.list(f"jobs/{job_id}/")
    assert any(k.startswith(weights) for k in keys), "the best run's weights are in S3"
    for run in RUNS:
        assert any(k.startswith(f"jobs/{job_id}/runs/{run}/") for k in keys)
    assert f"jobs/{job_id}/reports/chart.png" in keys
    assert any(data.startswith(PNG) for data in slack.uploads.values())

    # Every metrics line names its run: the chart has a line per run to draw.
    logs = b"".join(store.read_bytes(k) or b"" for k in keys if "/logs/metrics-" in k)
    named = set()
    for line in logs.splitlines():
        try:
            named.add(json.loads(line).get("run"))
        except ValueError:
            continue  # a line cut short by an upload
    assert set(RUNS) <= named

    # One instance in moto for the whole sweep, gone at the end.
    found = ec2.describe_instances(Filters=[{"Name": "tag:trainops:job", "Values": [job_id]}])
    insts = [i for r in found["Reservations"] for i in r["Instances"]]
    assert len(insts) == 1 and insts[0]["InstanceType"] == "g5.xlarge"
    wait(lambda: all(i["State"]["Name"] == "terminated" for r in ec2.describe_instances(
        InstanceIds=[insts[0]["InstanceId"]])["Reservations"] for i in r["Instances"]),
        30, "the instance terminated")
    assert BUCKET in e2e_env["TRAINOPS_STORE"]
