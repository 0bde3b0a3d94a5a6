"""What the runner needs from a place that runs machines (AWS EC2, or this machine).

Providers are thin adapters: they launch, describe and terminate, and translate the cloud's
errors into the few kinds the launch plan (workers/rules/launch_order.py) decides on. They never touch the
database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

TAG_JOB = "trainops:job"
TAG_ATTEMPT = "trainops:attempt"

# Our names for a machine's state; each provider maps its own states onto these in one dict.
MachineState = Literal["pending", "running", "terminating", "terminated", "stopped"]
LIVE_STATES: frozenset[str] = frozenset({"pending", "running"})
# What a machine that costs money, or may again, looks like (a stopped EBS instance still bills
# disk, and may be started): the reaper terminates these when no attempt owns them.
REAPABLE_STATES: frozenset[str] = frozenset({"pending", "running", "stopped"})


@dataclass(frozen=True)
class LaunchRequest:
    job_id: str
    attempt: int
    instance_type: str
    market: Literal["spot", "on-demand"]
    zone: str | None
    spec_uri: str  # where the agent reads its JobSpec
    client_token: str  # the same request twice makes one machine (AWS idempotency)
    user_data: str | None = None
    max_price: Decimal | None = None  # spot only; None: pay the spot price in force (AWS advice)
    disk_gb: int = 200
    # The caller already listed the job's machines for this attempt and found none (skips a
    # second DescribeInstances per launch).
    reconciled: bool = False


@dataclass(frozen=True)
class Machine:
    instance_id: str
    state: MachineState
    instance_type: str | None = None
    zone: str | None = None
    market: str | None = None
    job_id: str | None = None
    attempt: int | None = None
    launched_at: datetime | None = None
    # Why it stopped, as the cloud says it ("Server.SpotInstanceTermination" = interrupted).
    state_reason: str | None = None
    # security/metering (issue #14): when it stopped, as the provider knows it (EC2's state
    # transition time, the local process's exit) — the meter bills up to here, not to when a
    # monitor noticed.
    stopped_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def interrupted(self) -> bool:
        return (self.state_reason or "").startswith("Server.SpotInstanceTermination")


class LaunchError(Exception):
    """A launch failed for a reason that retrying the same request will not fix."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class CapacityError(LaunchError):
    """No room for this request; `scope` says how far the launch plan should step away:
    "zone" (try another zone), "instance_type" (another option), "market" (leave spot)."""

    def __init__(self, code: str, message: str, scope: Literal["zone", "instance_type", "market"]):
        super().__init__(code, message)
        self.scope = scope


class QuotaError(LaunchError):
    """The account's vCPU quota for this market cannot hold the instance."""

    def __init__(self, code: str, message: str, market: str):
        super().__init__(code, message)
        self.market = market


class TransientError(Exception):
    """Throttling or a server-side hiccup that survived boto3's own retries: retry the task."""


class Provider(Protocol):
    name: str

    def zones(self, region: str) -> list[str | None]:
        """Zones to try, in order of preference; [None] lets the provider choose."""
        ...

    def hourly_usd(self, instance_type: str, market: str, quoted_usd: float) -> Decimal:
        """The price the attempt is recorded at (the quote's live price, or the local rate)."""
        ...

    def precheck(self, instance_type: str, market: str) -> None:
        """Raise QuotaError when the launch is doomed by an account limit."""
        ...

    def find(self, job_id: str, attempt: int | None = None) -> list[Machine]:
        """Live machines tagged with this job (and attempt): reconcile before creating."""
        ...

    def launch(self, request: LaunchRequest) -> Machine: ...

    def describe(self, instance_ids: Iterable[str]) -> dict[str, Machine]:
        """The machines asked about; an id missing from the answer is gone."""
        ...

    def terminate(self, instance_ids: Iterable[str]) -> None:
        """Idempotent and verified: returns once each machine is terminating or gone."""
        ...

    def list_tagged(self) -> list[Machine]:
        """Every machine tagged trainops:job that may cost money (the reaper's view)."""
        ...
