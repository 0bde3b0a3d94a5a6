"""docker/iam-policy.json against the store layout the code writes: a GPU machine's role may write
every file an agent writes (its documents, their heartbeats/ copies the monitor lists, logs,
checkpoints and final outputs of every run and stage) and never the control plane's own files
(spec.json, control.json, bundles/, the monitor's memo); the control plane may write all of
them. Keys come from the same helpers the agent and the monitor use."""

from __future__ import annotations

import pytest

from schemas.checkpoints import MANIFEST, unit_prefix
from schemas.store import heartbeat_key, job_prefix
from tests.support.iam import allowed, policy
from workers.monitor.control import control_key
from workers.monitor.memo import MEMO_KEY

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
]


@pytest.mark.parametrize("key", AGENT_WRITES)
def test_a_machine_may_write_what_its_agent_writes(key):
    assert allowed(policy("instance_role"), "s3:PutObject", key), key
    assert allowed(policy("control_plane"), "s3:PutObject", key), key


@pytest.mark.parametrize("key", CONTROL_PLANE_ONLY)
def test_a_machine_may_never_write_the_control_planes_files(key):
    assert not allowed(policy("instance_role"), "s3:PutObject", key), key
    assert not allowed(policy("instance_role"), "s3:DeleteObject", key), key
    assert allowed(policy("control_plane"), "s3:PutObject", key), key


def test_a_machine_reads_its_spec_and_control_but_not_the_memo():
    role = policy("instance_role")
    assert allowed(role, "s3:GetObject", f"{PREFIX}/spec.json")
    assert allowed(role, "s3:GetObject", control_key(JOB))
    assert allowed(role, "s3:GetObject", "bundles/3b1f0c.tar.gz")
    assert not allowed(role, "s3:GetObject", MEMO_KEY)
