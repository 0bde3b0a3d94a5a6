"""EC2: spot (or on-demand) GPU machines for training, with reconcile-before-create launches.

Every launch first lists the job's machines by tag, so a redelivered or retried provision never
makes a second one, and passes a ClientToken derived from the job, attempt, type, zone and
market, so even two racing requests make one machine. Capacity errors are translated into
CapacityError with a scope the launch plan acts on; nothing else is retried here (boto3's
standard retry mode already retries throttling and 5xx a few times).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from decimal import Decimal
from functools import cached_property

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from schemas.settings import Settings
from schemas.store import StoreError
from workers.providers.aws_credentials import JobCredentialsIssuer
from workers.providers.aws_launch import run_args
from workers.providers.aws_machines import STATES, machine_of
from workers.providers.base import (
    TAG_ATTEMPT,
    TAG_JOB,
    CapacityError,
    LaunchError,
    LaunchRequest,
    Machine,
    QuotaError,
    TransientError,
)
from workers.providers.quotas import SpotQuotaCheck
from workers.rules.budget import usd

log = logging.getLogger(__name__)

# The Deep Learning AMI with PyTorch, through its public SSM parameter (always the latest build).
DLAMI_PARAMETER = ("/aws/service/deeplearning/ami/x86_64/"
                   "oss-nvidia-driver-gpu-pytorch-2.9-ubuntu-24.04/latest/ami-id")

# Named errors, and how far the launch plan should step away from them. Anything not named
# here is not retried: a bad AMI or instance profile fails the same way in every zone.
CAPACITY_SCOPES = {
    "InsufficientInstanceCapacity": "zone",
    "InsufficientHostCapacity": "zone",
    "InsufficientCapacity": "zone",
    "Unsupported": "zone",  # this type is not offered in this zone
    "SpotMaxPriceTooLow": "zone",
    "MaxSpotInstanceCountExceeded": "market",
}
QUOTA_CODES = {"VcpuLimitExceeded", "InstanceLimitExceeded"}
TRANSIENT_CODES = {"RequestLimitExceeded", "InternalError", "ServiceUnavailable", "Unavailable",
                   "InsufficientFreeAddressesInSubnet"}
DESCRIBE_BATCH = 1000
STATUS_BATCH = 100  # DescribeInstanceStatus takes at most 100 explicit instance ids
# States whose Machine the monitor reads more of than the state (the reason, for a spot
# interruption): those machines get a full DescribeInstances.
BRIEF_STATES = {"pending", "running"}
_MISSING_ID = re.compile(r"i-[0-9a-f]+")


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "Unknown")


class AwsProvider:
    name = "aws"

    def __init__(self, settings: Settings, session: boto3.Session | None = None):
        self.settings = settings
        session = session or boto3.Session(region_name=settings.aws_region)
        config = Config(retries={"mode": "standard", "max_attempts": 4})
        self.ec2 = session.client("ec2", config=config)
        self._session = session
        self.quotas = SpotQuotaCheck(session, self.ec2)
        # Per-job store credentials (schemas/credentials.py) when the deployment names a role.
        self.job_credentials = JobCredentialsIssuer(settings, session)

    # --- settings-derived, looked up once per process ------------------------------------
    @cached_property
    def ami(self) -> str:
        if self.settings.aws_ami:
            return self.settings.aws_ami
        try:
            ssm = self._session.client("ssm")
            return ssm.get_parameter(Name=DLAMI_PARAMETER)["Parameter"]["Value"]
        except (ClientError, BotoCoreError) as exc:
            raise LaunchError("AmiLookup", f"cannot read {DLAMI_PARAMETER} ({exc}); "
                                           "set TRAINOPS_AWS_AMI") from None

    @cached_property
    def _subnet_zones(self) -> dict[str, str]:
        subnets = self.settings.aws_subnets
        if not subnets:
            return {}
        found = self.ec2.describe_subnets(SubnetIds=subnets)["Subnets"]
        return {s["SubnetId"]: s["AvailabilityZone"] for s in found}

    def zones(self, region: str) -> list[str | None]:
        if self._subnet_zones:
            return sorted(set(self._subnet_zones.values()))
        return [None]  # let EC2 place it; the option's own zone is tried first by the plan

    @cached_property
    def _region_zones(self) -> list[str]:
        found = self.ec2.describe_availability_zones(
            Filters=[{"Name": "state", "Values": ["available"]}])["AvailabilityZones"]
        return sorted(z["ZoneName"] for z in found)

    def region_zones(self, region: str) -> list[str | None]:
        """Every zone of the region: a recovery that must avoid a lost zone names the others
        (with no subnets configured, `zones` lets EC2 choose and could choose the lost one)."""
        if self._subnet_zones:
            return self.zones(region)
        return list(self._region_zones) or [None]

    def hourly_usd(self, instance_type: str, market: str, quoted_usd: float) -> Decimal:
        return usd(quoted_usd)

    def spot_price_history(self, pairs: Iterable[tuple[str, str]], since) -> dict:
        """{(instance_type, zone): [(at, usd_per_hour), ...] oldest first} for Linux spot, one
        paginated DescribeSpotPriceHistory for all the pairs (never one call per job). The
        answer includes the price in force at `since` (AWS returns it as the first point)."""
        pairs = set(pairs)
        if not pairs:
            return {}
        out: dict[tuple[str, str], list] = {p: [] for p in pairs}
        pages = self.ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=sorted({t for t, _ in pairs}), StartTime=since,
            ProductDescriptions=["Linux/UNIX"],
            Filters=[{"Name": "availability-zone", "Values": sorted({z for _, z in pairs})}])
        try:
            for page in pages:
                for h in page["SpotPriceHistory"]:
                    key = (h["InstanceType"], h["AvailabilityZone"])
                    if key in out:
                        out[key].append((h["Timestamp"], usd(Decimal(h["SpotPrice"]))))
        except ClientError as exc:
            if _code(exc) in TRANSIENT_CODES:
                raise TransientError(str(exc)) from exc
            raise
        return {k: sorted(v) for k, v in out.items()}

    def precheck(self, instance_type: str, market: str) -> None:
        self.quotas.check(instance_type, market)

    # --- reads ---------------------------------------------------------------------------
    def _describe(self, **kwargs) -> list[Machine]:
        machines = []
        try:
            for page in self.ec2.get_paginator("describe_instances").paginate(**kwargs):
                for reservation in page["Reservations"]:
                    machines.extend(machine_of(i) for i in reservation["Instances"])
        except ClientError as exc:
            if _code(exc) in TRANSIENT_CODES:
                raise TransientError(str(exc)) from exc
            raise
        return machines

    def find(self, job_id: str, attempt: int | None = None) -> list[Machine]:
        filters = [{"Name": f"tag:{TAG_JOB}", "Values": [job_id]},
                   {"Name": "instance-state-name", "Values": ["pending", "running"]}]
        if attempt is not None:
            filters.append({"Name": f"tag:{TAG_ATTEMPT}", "Values": [str(attempt)]})
        return self._describe(Filters=filters)

    def describe(self, instance_ids: Iterable[str]) -> dict[str, Machine]:
        ids = sorted(set(instance_ids))
        out: dict[str, Machine] = {}
        for start in range(0, len(ids), DESCRIBE_BATCH):
            batch = ids[start:start + DESCRIBE_BATCH]
            while batch:
                try:
                    machines = self._describe(InstanceIds=batch)
                    out.update((m.instance_id, m) for m in machines)
                    break
                except ClientError as exc:
                    if _code(exc) != "InvalidInstanceID.NotFound":
                        raise
                    # Gone long enough that EC2 forgot it: drop those ids and ask again.
                    missing = set(_MISSING_ID.findall(str(exc)))
                    if not missing & set(batch):
                        break
                    batch = [i for i in batch if i not in missing]
        return out

    def describe_states(self, instance_ids: Iterable[str]) -> dict[str, Machine]:
        """The monitor's read: the state of each machine, cheaply. DescribeInstanceStatus (100
        ids a call, the calls in parallel) answers with a few fields per machine where
        DescribeInstances answers with dozens — at 1,000 machines that is most of a tick. A
        pending or running machine needs no more; the others (shutting down, terminated,
        stopped, or not listed) get the full DescribeInstances, one call per 1,000 of them, for
        the reason they stopped (a spot interruption)."""
        from concurrent.futures import ThreadPoolExecutor

        ids = sorted(set(instance_ids))
        batches = [ids[i:i + STATUS_BATCH] for i in range(0, len(ids), STATUS_BATCH)]
        with ThreadPoolExecutor(max_workers=min(10, len(batches) or 1)) as pool:
            found = [m for part in pool.map(self._states, batches) for m in part]
        out = {m.instance_id: m for m in found if m.state in BRIEF_STATES}
        rest = [i for i in ids if i not in out]
        if rest:
            out.update(self.describe(rest))
        return out

    def _states(self, batch: list[str]) -> list[Machine]:
        try:
            reply = self.ec2.describe_instance_status(InstanceIds=batch, IncludeAllInstances=True)
        except ClientError as exc:
            if _code(exc) == "InvalidInstanceID.NotFound":
                return []  # some are long gone: DescribeInstances sorts them out
            if _code(exc) in TRANSIENT_CODES:
                raise TransientError(str(exc)) from exc
            raise
        return [Machine(instance_id=s["InstanceId"],
                        state=STATES.get(s["InstanceState"]["Name"], "terminated"),
                        instance_type=None, zone=s.get("AvailabilityZone"), market=None,
                        job_id=None, attempt=None, launched_at=None, state_reason=None)
                for s in reply.get("InstanceStatuses", [])]

    def list_tagged(self) -> list[Machine]:
        return self._describe(Filters=[
            {"Name": "tag-key", "Values": [TAG_JOB]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ])

    # --- writes --------------------------------------------------------------------------
    def launch(self, request: LaunchRequest) -> Machine:
        self.job_credentials.check()
        existing = [] if request.reconciled else self.find(request.job_id, request.attempt)
        if existing:  # a retried or redelivered launch: adopt, never create a second one
            log.info("adopting %s for %s #%d", existing[0].instance_id, request.job_id,
                     request.attempt)
            return self._hand_over(request, existing[0])
        try:
            reply = self._run_instances(self._run_args(request))
        except ClientError as exc:
            code, message = _code(exc), exc.response.get("Error", {}).get("Message", "")
            if code in CAPACITY_SCOPES:
                raise CapacityError(code, message, CAPACITY_SCOPES[code]) from None
            if code in QUOTA_CODES:
                raise QuotaError(code, message, request.market) from None
            if code in TRANSIENT_CODES:
                raise TransientError(f"{code}: {message}") from None
            raise LaunchError(code, message) from None
        return self._hand_over(request, machine_of(reply["Instances"][0]))

    def _hand_over(self, request: LaunchRequest, machine: Machine) -> Machine:
        """Per-job credentials, before the agent looks. A failure is transient: the retried
        launch adopts this machine and hands them over."""
        try:
            self.job_credentials.hand_over(request.job_id, request.attempt, machine.instance_id)
        except (ClientError, BotoCoreError, StoreError) as exc:
            raise TransientError(f"credentials for {machine.instance_id}: {exc}") from None
        return machine

    def renew_credentials(self, live: list[tuple[str, int, str]], now) -> int:
        """Each tick: the per-job credentials of the machines that are up, renewed when due."""
        return self.job_credentials.renew(live, now)

    def _run_instances(self, args: dict) -> dict:
        """The one call that creates machines (tests inject capacity errors here)."""
        return self.ec2.run_instances(**args)

    def _run_args(self, request: LaunchRequest) -> dict:
        subnet = next((s for s, z in sorted(self._subnet_zones.items())
                       if request.zone is None or z == request.zone), None)
        return run_args(self.settings, request, self.ami, subnet)

    def terminate(self, instance_ids: Iterable[str], *, wait_s: float = 120) -> None:
        ids = sorted(set(instance_ids))
        if not ids:
            return
        live = [i for i, m in self.describe(ids).items() if m.state not in ("terminating",
                                                                            "terminated")]
        if live:
            try:
                self.ec2.terminate_instances(InstanceIds=live)
            except ClientError as exc:
                if _code(exc) != "InvalidInstanceID.NotFound":
                    raise
        self.job_credentials.withdraw_all(ids)  # a machine on its way out needs none
        deadline, pause = time.monotonic() + wait_s, 0.5
        while live:  # verified: a terminate call that silently did nothing must not pass
            now = self.describe(live)
            live = [i for i, m in now.items() if m.state not in ("terminating", "terminated")]
            if not live:
                return
            if time.monotonic() > deadline:
                raise TransientError(f"still not terminating after {wait_s:.0f} s: {live}")
            time.sleep(pause)
            pause = min(pause * 2, 5)
