"""RunInstances' arguments for one attempt: what every machine we launch is made with, and why.

IMDSv2 only; terminate on shutdown (the agent powers off at its money deadline, and "off" must
mean gone, not stopped and still paying for disk); our tags on the instance and its volume, so
reconciling and the reaper find them; spot as one-time with terminate on interruption.
"""

from __future__ import annotations

from schemas.settings import Settings
from workers.providers.base import TAG_ATTEMPT, TAG_JOB, LaunchRequest


def _tags(job_id: str, attempt: int) -> list[dict]:
    return [{"Key": TAG_JOB, "Value": job_id}, {"Key": TAG_ATTEMPT, "Value": str(attempt)},
            {"Key": "Name", "Value": f"trainops {job_id} #{attempt}"}]


def run_args(settings: Settings, request: LaunchRequest, ami: str, subnet: str | None) -> dict:
    tags = _tags(request.job_id, request.attempt)
    args: dict = {
        "ImageId": ami, "InstanceType": request.instance_type,
        "MinCount": 1, "MaxCount": 1, "ClientToken": request.client_token,
        # The agent powers off at its deadline; off must mean gone, never "stopped and
        # still billing for disk".
        "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                            "HttpPutResponseHopLimit": 2},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags},
                              {"ResourceType": "volume", "Tags": tags}],
        "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {
            "VolumeSize": request.disk_gb, "VolumeType": "gp3",
            "DeleteOnTermination": True}}],
    }
    if request.user_data:
        args["UserData"] = request.user_data
    if request.market == "spot":
        spot = {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}
        if request.max_price is not None:  # AWS advises against it: more interruptions
            spot["MaxPrice"] = str(request.max_price)
        args["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
    profile = settings.aws_instance_profile
    if profile:
        key = "Arn" if profile.startswith("arn:") else "Name"
        args["IamInstanceProfile"] = {key: profile}
    if subnet:
        args["SubnetId"] = subnet
    elif request.zone:
        args["Placement"] = {"AvailabilityZone": request.zone}
    if settings.aws_security_groups:
        args["SecurityGroupIds"] = settings.aws_security_groups
    if settings.aws_key_name:
        args["KeyName"] = settings.aws_key_name
    return args
