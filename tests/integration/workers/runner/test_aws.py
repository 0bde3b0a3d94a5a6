"""The aws provider against moto's server. moto raises no capacity errors and has no Service
Quotas for EC2: those are injected at our own boundary (the EC2 client's run_instances, the
quota cache)."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from schemas.settings import Settings
from workers.providers.aws import AwsProvider
from workers.providers.base import (
    CapacityError,
    LaunchError,
    LaunchRequest,
    QuotaError,
)


@pytest.fixture
def aws(moto_reset, monkeypatch):
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    boto3.client("iam").create_instance_profile(InstanceProfileName="trainops-agent")
    settings = Settings(TRAINOPS_AWS_AMI=ami, TRAINOPS_AWS_INSTANCE_PROFILE="trainops-agent")
    return AwsProvider(settings), ec2


def _req(job="j-aaaaaa", attempt=1, market="spot", zone="us-east-1b", token=None, **kw):
    return LaunchRequest(job_id=job, attempt=attempt, instance_type="g5.xlarge", market=market,
                         zone=zone, spec_uri=f"s3://b/jobs/{job}/spec.json",
                         client_token=token or f"{job}-{attempt}", user_data="#!/bin/bash\n", **kw)


def test_launch_sets_spot_imdsv2_terminate_on_shutdown_and_tags(aws):
    provider, ec2 = aws
    m = provider.launch(_req())
    assert m.live and m.market == "spot" and m.zone == "us-east-1b"
    assert (m.job_id, m.attempt) == ("j-aaaaaa", 1)
    inst = ec2.describe_instances(InstanceIds=[m.instance_id])["Reservations"][0]["Instances"][0]
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    attr = ec2.describe_instance_attribute(InstanceId=m.instance_id,
                                           Attribute="instanceInitiatedShutdownBehavior")
    assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["trainops:job"] == "j-aaaaaa" and tags["trainops:attempt"] == "1"


def test_run_arguments_follow_the_issue(aws):
    provider, _ = aws
    args = provider._run_args(_req())
    spot = args["InstanceMarketOptions"]["SpotOptions"]
    assert spot == {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}
    assert "MaxPrice" not in spot
    assert args["IamInstanceProfile"] == {"Name": "trainops-agent"}
    assert args["ClientToken"] == "j-aaaaaa-1"
    from decimal import Decimal

    capped = provider._run_args(_req(max_price=Decimal("0.5")))
    assert capped["InstanceMarketOptions"]["SpotOptions"]["MaxPrice"] == "0.5"
    assert "InstanceMarketOptions" not in provider._run_args(_req(market="on-demand"))


def test_a_retried_launch_adopts_instead_of_creating(aws):
    provider, ec2 = aws
    first = provider.launch(_req())
    again = provider.launch(_req(token="another-token"))
    assert again.instance_id == first.instance_id
    other_attempt = provider.launch(_req(attempt=2))
    assert other_attempt.instance_id != first.instance_id
    assert len(provider.find("j-aaaaaa")) == 2


def test_capacity_errors_are_typed(aws, monkeypatch):
    provider, _ = aws

    def no_room(**kwargs):
        raise ClientError({"Error": {"Code": "InsufficientInstanceCapacity",
                                     "Message": "no g5 in us-east-1b"}}, "RunInstances")

    monkeypatch.setattr(provider.ec2, "run_instances", no_room)
    with pytest.raises(CapacityError) as err:
        provider.launch(_req())
    assert err.value.scope == "zone" and err.value.code == "InsufficientInstanceCapacity"

    def bad_ami(**kwargs):
        raise ClientError({"Error": {"Code": "InvalidAMIID.NotFound", "Message": "x"}},
                          "RunInstances")

    monkeypatch.setattr(provider.ec2, "run_instances", bad_ami)
    with pytest.raises(LaunchError) as err:
        provider.launch(_req())
    assert not isinstance(err.value, CapacityError)


def test_quota_precheck(aws):
    provider, _ = aws
    provider.precheck("g5.xlarge", "spot")  # moto has no EC2 quotas: skipped, not failed
    provider.quotas._quota["L-3819A6DF"] = (time.monotonic(), 0.0)  # a new account: 0 vCPUs
    with pytest.raises(QuotaError, match="spot vCPU quota for G instances is 0.*needs 4"):
        provider.precheck("g5.xlarge", "spot")
    provider.quotas._quota["L-3819A6DF"] = (time.monotonic(), 8.0)
    provider.precheck("g5.xlarge", "spot")


def test_describe_batches_and_survives_forgotten_ids(aws):
    provider, _ = aws
    m = provider.launch(_req())
    got = provider.describe([m.instance_id, "i-0123456789abcdef0"])
    assert set(got) == {m.instance_id} and got[m.instance_id].state == "running"


def test_terminate_is_verified_and_idempotent(aws):
    provider, _ = aws
    m = provider.launch(_req())
    provider.terminate([m.instance_id])
    assert provider.describe([m.instance_id])[m.instance_id].state == "terminated"
    provider.terminate([m.instance_id, "i-0123456789abcdef0"])  # again, and an unknown id
    assert provider.find("j-aaaaaa") == [] and provider.list_tagged() == []


def test_default_ami_comes_from_the_dlami_parameter(moto_reset):
    provider = AwsProvider(Settings())
    with pytest.raises(LaunchError, match="TRAINOPS_AWS_AMI"):
        _ = provider.ami  # moto has no public DLAMI parameter: the message says what to set
