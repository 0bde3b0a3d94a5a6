"""The vCPU quota pre-check: a launch the account's quota cannot hold fails with a clear line
instead of a string of VcpuLimitExceeded errors (new accounts often have 0 spot vCPUs for G and
P instances).

Quotas are per instance family group and market (Service Quotas, service "ec2"). The check
compares the quota with the instance's vCPUs; it does not count machines already running, so
a full quota still surfaces later as QuotaError from run_instances. When Service Quotas cannot
be read (no permission, a test server that lacks it), the check is skipped and logged.
"""

from __future__ import annotations

import logging
import time

from botocore.exceptions import BotoCoreError, ClientError

from workers.providers.base import QuotaError

log = logging.getLogger(__name__)

# (market, family group) -> quota code. Family group: the instance type's leading letters.
QUOTA_CODES = {
    ("spot", "g"): "L-3819A6DF",  # All G and VT Spot Instance Requests
    ("spot", "p"): "L-7212CCBC",  # All P Spot Instance Requests
    ("spot", "standard"): "L-34B43A08",
    ("on-demand", "g"): "L-DB2E81BA",  # Running On-Demand G and VT instances
    ("on-demand", "p"): "L-417A185B",  # Running On-Demand P instances
    ("on-demand", "standard"): "L-1216C47A",
}
CACHE_S = 300.0


def family_group(instance_type: str) -> str:
    letter = instance_type[:1].lower()
    if letter in ("g", "p"):
        return letter
    if instance_type.lower().startswith("vt"):
        return "g"
    return "standard"


class SpotQuotaCheck:
    def __init__(self, session, ec2):
        self._session = session
        self.ec2 = ec2
        self._vcpus: dict[str, int] = {}
        self._quota: dict[str, tuple[float, float | None]] = {}  # code -> (read at, value)

    def _instance_vcpus(self, instance_type: str) -> int | None:
        if instance_type not in self._vcpus:
            try:
                info = self.ec2.describe_instance_types(InstanceTypes=[instance_type])
                self._vcpus[instance_type] = info["InstanceTypes"][0]["VCpuInfo"]["DefaultVCpus"]
            except (ClientError, BotoCoreError, IndexError, KeyError) as exc:
                log.warning("cannot read the vCPUs of %s (%s); skipping the quota check",
                            instance_type, exc)
                return None
        return self._vcpus[instance_type]

    def _quota_value(self, code: str) -> float | None:
        cached = self._quota.get(code)
        if cached and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        value = None
        try:
            client = self._session.client("service-quotas")
            value = client.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
        except (ClientError, BotoCoreError, KeyError) as exc:
            log.info("cannot read quota %s (%s); skipping the quota check", code, exc)
        self._quota[code] = (time.monotonic(), value)
        return value

    def check(self, instance_type: str, market: str) -> None:
        code = QUOTA_CODES.get((market, family_group(instance_type)))
        if code is None:
            return
        quota = self._quota_value(code)
        if quota is None:
            return
        vcpus = self._instance_vcpus(instance_type)
        if vcpus is not None and quota < vcpus:
            raise QuotaError(
                "QuotaPrecheck",
                f"the {market} vCPU quota for {family_group(instance_type).upper()} instances is "
                f"{quota:g}, but {instance_type} needs {vcpus}; ask for more in Service Quotas "
                f"(ec2 {code})", market)
