"""Per-job store credentials (schemas/credentials.py) against moto's server: the launch hands
each machine its job's credentials where only it may read them, the monitor renews them before
they lapse, a terminate withdraws them, and the agent writes with them alone. moto does not
enforce IAM (tests/unit/docker/test_iam_policy.py checks the policies); here the credentials'
identity is read back through STS itself."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from schemas.credentials import JobCredentials, channel_key, principal
from schemas.settings import Settings
from schemas.spec import utcnow
from schemas.store import S3Store, StoreError, open_store
from training.agent.credentials import whoami, writing_with_job_credentials
from workers.providers.aws import AwsProvider
from workers.providers.aws_credentials import ISSUED_KEY, JobCredentialsIssuer
from workers.providers.base import LaunchError, LaunchRequest

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def aws(moto_reset, s3_bucket):
    """The instance role in its profile, the job role, an AMI, the store's bucket."""
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="trainops-agent", AssumeRolePolicyDocument=TRUST)["Role"]
    iam.create_instance_profile(InstanceProfileName="trainops-agent-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="trainops-agent-profile",
                                     RoleName="trainops-agent")
    job_role = iam.create_role(RoleName="trainops-job", AssumeRolePolicyDocument=TRUST)["Role"]
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    store_uri = f"s3://{s3_bucket}/store"
    settings = Settings(TRAINOPS_AWS_AMI=ami, TRAINOPS_AWS_INSTANCE_PROFILE="trainops-agent-profile",
                        TRAINOPS_AWS_JOB_ROLE=job_role["Arn"], TRAINOPS_STORE=store_uri)
    return settings, open_store(store_uri), role["RoleId"], ec2


def _req(job="j-aaaaaa", attempt=1):
    return LaunchRequest(job_id=job, attempt=attempt, instance_type="g5.xlarge", market="spot",
                         zone="us-east-1b", spec_uri=f"s3://b/jobs/{job}/spec.json",
                         client_token=f"{job}-{attempt}", user_data="#!/bin/bash\n")


def _channel(store, role_id: str, instance_id: str) -> JobCredentials | None:
    blob = store.read_bytes(channel_key(principal(role_id, instance_id)))
    return None if blob is None else JobCredentials.model_validate_json(blob)


def _identity(creds: JobCredentials) -> str:
    """Who STS says these credentials are."""
    sts = boto3.client("sts", aws_access_key_id=creds.access_key_id,
                       aws_secret_access_key=creds.secret_access_key.get_secret_value(),
                       aws_session_token=creds.session_token.get_secret_value())
    return sts.get_caller_identity()["Arn"]


def test_a_launch_hands_the_machine_its_jobs_credentials_and_a_terminate_withdraws_them(aws):
    settings, store, role_id, _ = aws
    provider = AwsProvider(settings)
    machine = provider.launch(_req())
    creds = _channel(store, role_id, machine.instance_id)
    assert creds is not None, "no credentials where the machine reads them"
    assert (creds.job_id, creds.attempt) == ("j-aaaaaa", 1)
    assert creds.expires_at - utcnow() > timedelta(minutes=50)
    assert _identity(creds).endswith(":assumed-role/trainops-job/trainops-j-aaaaaa-1")
    # The secret never shows in a repr or a log line of the document.
    assert creds.secret_access_key.get_secret_value() not in repr(creds)
    assert store.list("credentials/") == [channel_key(principal(role_id, machine.instance_id))]

    again = provider.launch(_req())  # a redelivered launch adopts the machine and hands over
    assert again.instance_id == machine.instance_id
    assert len(store.list("credentials/")) == 1

    provider.terminate([machine.instance_id])
    assert store.list("credentials/") == [], "a terminated machine's credentials stayed"


def test_the_monitor_renews_credentials_before_they_lapse_and_withdraws_a_gone_machines(aws):
    settings, store, role_id, _ = aws
    provider = AwsProvider(settings)
    machine = provider.launch(_req("j-bbbbbb", 2))
    live = [("j-bbbbbb", 2, machine.instance_id)]
    first = _channel(store, role_id, machine.instance_id)
    assert provider.renew_credentials(live, utcnow()) == 0, "renewed credentials an hour from lapsing"
    due = first.expires_at - timedelta(minutes=19)
    assert provider.renew_credentials(live, due) == 1
    renewed = _channel(store, role_id, machine.instance_id)
    assert renewed.access_key_id != first.access_key_id and renewed.job_id == "j-bbbbbb"

    # A restarted worker takes the ends the last tick saved instead of issuing them again.
    restarted = AwsProvider(settings)
    assert restarted.renew_credentials(live, utcnow()) == 0
    assert restarted.renew_credentials(live, renewed.expires_at - timedelta(minutes=19)) == 1
    # With no record at all, it reads each machine's back; with none there, it issues at once.
    store.delete(ISSUED_KEY)
    assert AwsProvider(settings).renew_credentials(live, utcnow()) == 0
    store.delete(ISSUED_KEY)
    store.delete(channel_key(principal(role_id, machine.instance_id)))
    assert AwsProvider(settings).renew_credentials(live, utcnow()) == 1
    assert _channel(store, role_id, machine.instance_id) is not None
    # The machine is gone (a spot reclaim): its credentials are withdrawn.
    assert provider.renew_credentials([], utcnow()) == 0
    assert _channel(store, role_id, machine.instance_id) is None


def test_a_job_role_without_an_instance_profile_fails_before_a_machine_exists(aws):
    settings, _, _, ec2 = aws
    provider = AwsProvider(settings.model_copy(update={"aws_instance_profile": None}))
    with pytest.raises(LaunchError, match="TRAINOPS_AWS_INSTANCE_PROFILE"):
        provider.launch(_req())
    assert not ec2.describe_instances()["Reservations"]


def _issue(job_id: str, minutes: int) -> JobCredentials:
    c = boto3.client("sts").assume_role(RoleArn="arn:aws:iam::123456789012:role/trainops-job",
                                       RoleSessionName=f"trainops-{job_id}-1")["Credentials"]
    return JobCredentials(job_id=job_id, attempt=1, access_key_id=c["AccessKeyId"],
                          secret_access_key=c["SecretAccessKey"], session_token=c["SessionToken"],
                          expires_at=utcnow() + timedelta(minutes=minutes))


def _key_of(client) -> str:
    return client._request_signer._credentials.get_frozen_credentials().access_key


def test_the_agent_writes_with_its_jobs_credentials_and_renews_them_from_the_store(aws):
    _, store, _, _ = aws
    key = channel_key(whoami(boto3.Session()))  # moto's answer stands in for <role>:<instance>
    near = _issue("j-cccccc", minutes=5)  # inside botocore's 10-minute mandatory refresh
    store.write_bytes(key, near.to_store())
    agent_store = writing_with_job_credentials(store, "j-cccccc", wait_s=5, poll_s=0.05)
    assert isinstance(agent_store, S3Store) and agent_store.client is store.client
    fresh = _issue("j-cccccc", minutes=60)
    store.write_bytes(key, fresh.to_store())  # the control plane renewed them
    agent_store.write_bytes("jobs/j-cccccc/progress.json", b"{}")
    assert _key_of(agent_store.writer) == fresh.access_key_id, "the agent never re-read them"
    assert _key_of(agent_store.client) == "testing", "reads moved off the machine's own role"
    assert store.read_bytes("jobs/j-cccccc/progress.json") == b"{}"


def test_the_agent_refuses_another_jobs_credentials_and_says_when_none_come(aws):
    _, store, _, _ = aws
    key = channel_key(whoami(boto3.Session()))
    with pytest.raises(StoreError, match=f"no per-job credentials at .*{key} after 0 s"):
        writing_with_job_credentials(store, "j-dddddd", wait_s=0.2, poll_s=0.05)
    store.write_bytes(key, _issue("j-eeeeee", minutes=60).to_store())
    with pytest.raises(StoreError, match="for job j-eeeeee, not j-dddddd"):
        writing_with_job_credentials(store, "j-dddddd", wait_s=0.2, poll_s=0.05)


def test_a_monitor_tick_renews_the_machines_that_are_up_and_withdraws_the_rest(aws):
    from types import SimpleNamespace

    from workers.monitor.tick import renew_credentials

    settings, store, role_id, _ = aws
    provider = AwsProvider(settings)
    machine = provider.launch(_req("j-ffffff"))
    first = _channel(store, role_id, machine.instance_id)
    rows = [(SimpleNamespace(provider="aws", instance_id=machine.instance_id, attempt=1),
             SimpleNamespace(id="j-ffffff"))]
    up = provider.describe([machine.instance_id])
    renew_credentials({"aws": provider}, rows, up, first.expires_at - timedelta(minutes=19))
    assert _channel(store, role_id, machine.instance_id).access_key_id != first.access_key_id
    renew_credentials({"aws": provider}, rows, {}, utcnow())  # the machine is no longer seen
    assert _channel(store, role_id, machine.instance_id) is None


class CountingStore:
    """The real store, counting reads by key."""

    def __init__(self, inner):
        self.inner, self.reads = inner, []

    def read_bytes(self, key):
        self.reads.append(key)
        return self.inner.read_bytes(key)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_restarted_worker_reads_one_record_not_every_machines_credentials(aws):
    settings, store, _, _ = aws
    provider = AwsProvider(settings)
    machines = [provider.launch(_req(f"j-{k:06d}")) for k in range(3)]
    live = [(f"j-{k:06d}", 1, m.instance_id) for k, m in enumerate(machines)]
    first = JobCredentialsIssuer(settings, boto3.Session(), CountingStore(store))
    assert first.renew(live, utcnow()) == 0  # the launch's, read back one by one, then saved
    assert len(first.store.reads) == 1 + 3
    restarted = JobCredentialsIssuer(settings, boto3.Session(), CountingStore(store))
    assert restarted.renew(live, utcnow()) == 0
    assert restarted.store.reads == [ISSUED_KEY]
