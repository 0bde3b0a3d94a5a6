"""The agent as the GPU machine runs it: `python -m training.agent` in a subprocess, tiny model,
CPU, file:// and s3:// (moto's server) stores."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from datetime import timedelta

import boto3
import pytest

from tests.support.agent import Job, start_agent
from training.recipes.builtin.demo_data import DEMO_PATH


def test_smoke_run_succeeds(file_store, tmp_path):
    job = Job(file_store, "j-smoke", max_steps=6, checkpoint_every_steps=2, keep_checkpoints=2)
    agent = start_agent(job, tmp_path / "work")
    out = agent.communicate(timeout=120)[0].decode()
    assert agent.returncode == 0, out
    status = job.read("status.json")
    assert status["state"] == "succeeded" and status["step"] == 6 and status["final_loss"] > 0
    assert status["output_uri"] == f"{file_store}/jobs/j-smoke/final/"
    final = job.read("final/MANIFEST.json")
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= {f["path"] for f in final["files"]}
    # No checkpoint at the last step: final/ is the result. Step 2's may have been replaced by
    # step 4's before its upload began (the uploader keeps the newest; a slow machine does this).
    steps = job.manifests()
    assert steps[0] == 4 and set(steps) <= {2, 4}, steps
    progress = job.read("progress.json")
    assert progress["phase"] == "done" and progress["total_steps"] == 6 and progress["tokens_seen"] == 6 * 2 * 64
    assert sorted(job.metrics(1)) == [1, 2, 3, 4, 5, 6]
    assert "ends: succeeded at step 6" in job.log()


def test_bad_spec_is_one_line_and_exit_2(file_store, tmp_path):
    job = Job(file_store, "j-bad")
    job.store.write_bytes("jobs/j-bad/spec.json", json.dumps({**job.spec.model_dump(), "seq_len": -1}).encode())
    agent = start_agent(job, tmp_path / "work")
    out = agent.communicate(timeout=60)[0].decode().strip()
    assert agent.returncode == 2 and out.splitlines() == [out] and "seq_len" in out and "Traceback" not in out


@pytest.mark.slow
def test_kill_then_resume_gives_the_same_losses(file_store, tmp_path):
    from training.agent.main import run

    fields = dict(max_steps=40, checkpoint_every_steps=3, keep_checkpoints=2, lora_dropout=0.1, warmup_steps=3)
    reference = Job(file_store, "j-reference", **fields)
    assert run(reference.uri, tmp_path / "ref") == 0
    job = Job(file_store, "j-killed", **fields)
    agent = start_agent(job, tmp_path / "work1")
    deadline = time.monotonic() + 60
    while not job.manifests() and time.monotonic() < deadline:
        time.sleep(0.02)
    agent.send_signal(signal.SIGKILL)  # no goodbye: whatever was mid-upload stays manifest-less
    agent.wait()
    resumed_from = job.manifests()[0]
    assert job.read("status.json") is None and resumed_from < 40
    job.write_spec(attempt=2)  # what the runner does when it relaunches
    assert run(job.uri, tmp_path / "work2") == 0
    losses, expected = job.metrics(2), reference.metrics(1)
    assert sorted(losses) == list(range(resumed_from + 1, 41))
    assert max(abs(losses[s] - expected[s]) for s in losses) <= 1e-5
    assert job.read("status.json")["final_loss"] == pytest.approx(reference.read("status.json")["final_loss"], abs=1e-5)


def test_spot_notice_checkpoints_and_exits_interrupted(file_store, tmp_path, fake_imds):
    job = Job(file_store, "j-spot", epochs=1000, checkpoint_every_steps=10**6)
    agent = start_agent(job, tmp_path / "work", AWS_EC2_METADATA_SERVICE_ENDPOINT=fake_imds.endpoint)
    job.wait_training(min_step=2)
    fake_imds.notice()
    noticed = time.monotonic()
    agent.communicate(timeout=60)
    took = time.monotonic() - noticed
    assert agent.returncode == 3
    status = job.read("status.json")
    assert status["state"] == "interrupted" and status["step"] >= 2 and status["error"] is None
    assert job.manifests() == [status["step"]] == [status["last_checkpoint_step"]]
    assert took < 20, f"{took:.1f} s from notice to exit"
    assert "spot interruption notice" in job.log()


def test_deadline_checkpoints_and_powers_off(file_store, tmp_path):
    """TRAINOPS_POWER_OFF_AT_DEADLINE=1 (the AWS bootstrap sets it) runs `shutdown -h now`; here a
    `shutdown` on PATH records the call instead of taking this machine down."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "shutdown"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/shutdown-called\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    job = Job(file_store, "j-deadline", epochs=1000, checkpoint_every_steps=10**6)
    agent = start_agent(job, tmp_path / "work", TRAINOPS_POWER_OFF_AT_DEADLINE="1",
                        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    job.wait_training(min_step=2)
    job.control(deadline="2030-01-01T00:00:00Z")  # far away: nothing happens
    time.sleep(1)
    assert agent.poll() is None
    job.control(deadline=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 10)))  # inside the margin
    agent.communicate(timeout=60)
    assert agent.returncode == 5
    status = job.read("status.json")
    assert status["state"] == "deadline" and job.manifests() == [status["step"]]
    assert (tmp_path / "shutdown-called").read_text().split() == ["-h", "now"]


def test_s3_store_and_s3_data(s3_bucket, tmp_path):
    s3 = boto3.client("s3")
    s3.upload_file(str(DEMO_PATH), s3_bucket, "data/demo.jsonl")
    job = Job(f"s3://{s3_bucket}/team", "j-s3", data=f"s3://{s3_bucket}/data/demo.jsonl", max_steps=4,
              checkpoint_every_steps=2)
    agent = start_agent(job, tmp_path / "work")  # inherits AWS_ENDPOINT_URL from the fixture
    out = agent.communicate(timeout=120)[0].decode()
    assert agent.returncode == 0, out
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="team/jobs/j-s3/")["Contents"]}
    assert {"team/jobs/j-s3/status.json", "team/jobs/j-s3/checkpoints/step-2/MANIFEST.json",
            "team/jobs/j-s3/final/MANIFEST.json", "team/jobs/j-s3/logs/attempt-1.log"} <= keys
    assert job.read("status.json")["output_uri"] == f"s3://{s3_bucket}/team/jobs/j-s3/final/"


def test_s3_store_with_per_job_credentials(s3_bucket, tmp_path):
    """The agent writes with the credentials the control plane left for this machine (moto's
    GetCallerIdentity stands in for the instance role's <role id>:<instance id>)."""
    from schemas.credentials import JobCredentials, channel_key
    from schemas.spec import utcnow
    from schemas.store import open_store
    from training.agent.credentials import whoami

    store = open_store(f"s3://{s3_bucket}/team")
    c = boto3.client("sts").assume_role(RoleArn="arn:aws:iam::123456789012:role/trainops-job",
                                       RoleSessionName="trainops-j-creds-1")["Credentials"]
    store.write_bytes(channel_key(whoami(boto3.Session())), JobCredentials(
        job_id="j-creds", attempt=1, access_key_id=c["AccessKeyId"],
        secret_access_key=c["SecretAccessKey"], session_token=c["SessionToken"],
        expires_at=utcnow() + timedelta(hours=1)).to_store())
    job = Job(f"s3://{s3_bucket}/team", "j-creds", max_steps=2, job_credentials=True)
    agent = start_agent(job, tmp_path / "work")
    out = agent.communicate(timeout=120)[0].decode()
    assert agent.returncode == 0, out
    assert job.read("status.json")["state"] == "succeeded"
    assert "writing the job's files with per-job credentials" in job.log()
    assert c["SecretAccessKey"] not in job.log() + out, "a secret reached the log"


def test_per_job_credentials_on_a_file_store_fail_in_one_line(file_store, tmp_path):
    job = Job(file_store, "j-creds-file", job_credentials=True)
    agent = start_agent(job, tmp_path / "work")
    out = agent.communicate(timeout=120)[0].decode()
    assert agent.returncode == 1
    assert out.strip().splitlines() == [
        f"trainops agent: cannot write job j-creds-file's files: per-job credentials need an "
        f"s3:// store, not {file_store}"], out
