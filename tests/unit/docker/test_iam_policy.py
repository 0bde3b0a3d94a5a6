"""docker/iam-policy.json against the store layout the code writes. With per-job credentials, the
job role tagged with a job may write every file that job's agent writes (its documents, their
heartbeats/ copies the monitor lists, logs, checkpoints and final outputs of every run and
stage) and nothing of another job's; the machine's own role writes nothing and reads only its
own credentials. Without them, the machine's role writes every job's agent files. No role a
machine holds may write the control plane's own files (spec.json, control.json, bundles/,
credentials/, the monitor's memo); the control plane may write all of them. Keys come from
the same helpers the agent and the monitor use."""

from __future__ import annotations

import pytest

from schemas.checkpoints import MANIFEST, unit_prefix
from schemas.credentials import channel_key, principal
from schemas.store import heartbeat_key, job_prefix
from tests.support.iam import allowed, job_session, machine, policy, shared_instance_role
from workers.monitor.control import control_key
from workers.monitor.memo import MEMO_KEY
from workers.providers.aws_credentials import ISSUED_KEY

JOB = "j-4f2a9c"
PREFIX = job_prefix(JOB)
UNIT = unit_prefix(PREFIX, run="learning_rate=0.0001", stage="rl")
AGENT_WRITES = [
    f"{PREFIX}/progress.json",
    f"{PREFIX}/status.json",
    heartbeat_key(JOB, "progress.json"),
    heartbeat_key(JOB, "status.json"),
    f"{PREFIX}/logs/attempt-2.log",
    f"{PREFIX}/logs/metrics-attempt-2.jsonl",
    f"{PREFIX}/checkpoints/step-50/{MANIFEST}",
    f"{PREFIX}/checkpoints/step-50/adapter_model.safetensors",
    f"{UNIT}/checkpoints/step-4/{MANIFEST}",
    f"{UNIT}/final/{MANIFEST}",
    f"{unit_prefix(PREFIX, stage='eval-2')}/final/eval.json",
]
CONTROL_PLANE_ONLY = [
    f"{PREFIX}/spec.json",
    control_key(JOB),
    "bundles/3b1f0c.tar.gz",
    MEMO_KEY,
    ISSUED_KEY,
    channel_key(principal("AROAINSTANCE", "i-0abc")),
]
OTHER = "j-77e01b"



@pytest.mark.parametrize("key", AGENT_WRITES)
def test_a_job_session_may_write_what_its_agent_writes_and_nothing_of_another_job(key):
    assert allowed(policy("job_role"), "s3:PutObject", key, job_session(JOB)), key
    assert allowed(policy("job_role"), "s3:DeleteObject", key, job_session(JOB)), key
    assert not allowed(policy("job_role"), "s3:PutObject", key, job_session(OTHER)), key
    assert not allowed(policy("job_role"), "s3:PutObject", key), "untagged session wrote " + key
    assert allowed(policy("control_plane"), "s3:PutObject", key), key


@pytest.mark.parametrize("key", AGENT_WRITES)
def test_with_per_job_credentials_a_machines_own_role_writes_nothing(key):
    caller = machine("AROAINSTANCE", "i-0abc")
    assert not allowed(policy("instance_role"), "s3:PutObject", key, caller), key
    assert not allowed(policy("instance_role"), "s3:DeleteObject", key, caller), key
    # Without a job role, the documented addition lets every machine write every job's files.
    assert allowed(shared_instance_role(), "s3:PutObject", key, caller), key


@pytest.mark.parametrize("key", CONTROL_PLANE_ONLY)
def test_a_machine_may_never_write_the_control_planes_files(key):
    for role, caller in [(policy("instance_role"), machine("AROAINSTANCE", "i-0abc")),
                         (shared_instance_role(), machine("AROAINSTANCE", "i-0abc")),
                         (policy("job_role"), job_session(JOB))]:
        assert not allowed(role, "s3:PutObject", key, caller), key
        assert not allowed(role, "s3:DeleteObject", key, caller), key
    assert allowed(policy("control_plane"), "s3:PutObject", key), key


def test_a_machine_reads_its_own_credentials_and_no_other_machines():
    role, me = policy("instance_role"), machine("AROAINSTANCE", "i-0abc")
    assert allowed(role, "s3:GetObject", channel_key(principal("AROAINSTANCE", "i-0abc")), me)
    assert not allowed(role, "s3:GetObject", channel_key(principal("AROAINSTANCE", "i-0def")),
                       me)
    assert not allowed(role, "s3:GetObject", channel_key(principal("AROAOTHER", "i-0abc")), me)
    assert allowed(policy("control_plane"), "s3:DeleteObject",
                   channel_key(principal("AROAINSTANCE", "i-0abc")))


def test_only_the_control_plane_may_assume_the_job_role_and_only_with_a_job_tag():
    trust = policy("job_role_trust")["Statement"]
    assert [s["Effect"] for s in trust] == ["Allow"]
    assert set(trust[0]["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    assert trust[0]["Principal"]["AWS"].endswith(":role/CONTROL_PLANE_ROLE_NAME")
    assert trust[0]["Condition"]["StringLike"]["aws:RequestTag/trainops:job"] == "j-*"
    issuing = [s for s in policy("control_plane")["Statement"]
               if "sts:AssumeRole" in s["Action"]]
    assert issuing and all(s["Resource"].endswith(":role/JOB_ROLE_NAME") for s in issuing)


def test_a_machine_reads_its_spec_and_control_but_not_the_memo():
    role = policy("instance_role")
    assert allowed(role, "s3:GetObject", f"{PREFIX}/spec.json")
    assert allowed(role, "s3:GetObject", control_key(JOB))
    assert allowed(role, "s3:GetObject", "bundles/3b1f0c.tar.gz")
    assert not allowed(role, "s3:GetObject", MEMO_KEY)
    assert not allowed(role, "s3:GetObject", ISSUED_KEY)
