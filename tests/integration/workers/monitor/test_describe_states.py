"""The monitor's cheap read of machine states on AWS (AwsProvider.describe_states), against
moto's server: DescribeInstanceStatus for all, DescribeInstances only for the machines that are
neither pending nor running, and the same states describe() gives."""

from __future__ import annotations

from collections import Counter

import boto3

from schemas.settings import Settings
from workers.providers.aws import AwsProvider


def test_states_are_read_cheaply_and_agree_with_describe(moto_reset):
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ids = [i["InstanceId"] for i in ec2.run_instances(
        ImageId=ami, InstanceType="g5.xlarge", MinCount=205, MaxCount=205)["Instances"]]
    ec2.terminate_instances(InstanceIds=ids[:2])
    provider = AwsProvider(Settings())
    calls: Counter = Counter()
    provider.ec2.meta.events.register(
        "before-call.ec2.*", lambda model, **_: calls.update([model.name]))

    brief = provider.describe_states(ids)
    assert calls == {"DescribeInstanceStatus": 3, "DescribeInstances": 1}  # 100 ids a call
    full = provider.describe(ids)
    assert {i: m.state for i, m in brief.items()} == {i: m.state for i, m in full.items()}
    assert {brief[i].state for i in ids[:2]} <= {"terminating", "terminated"}
    assert brief[ids[0]].instance_type == "g5.xlarge"  # the full read, for a stopped machine
    assert brief[ids[5]].state == "running" and brief[ids[5]].zone == full[ids[5]].zone
