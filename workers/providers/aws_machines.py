"""What EC2 says about a machine, in our words: its state, its job and attempt (from our tags),
and when it stopped (the meter bills up to that moment, not to when the monitor noticed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from workers.providers.base import TAG_ATTEMPT, TAG_JOB, Machine

# The one map from EC2 states to ours.
STATES = {"pending": "pending", "running": "running", "shutting-down": "terminating",
          "terminated": "terminated", "stopping": "stopped", "stopped": "stopped"}


def machine_of(inst: dict) -> Machine:
    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
    attempt = tags.get(TAG_ATTEMPT)
    return Machine(
        instance_id=inst["InstanceId"], state=STATES.get(inst["State"]["Name"], "terminated"),
        instance_type=inst.get("InstanceType"),
        zone=inst.get("Placement", {}).get("AvailabilityZone"),
        market="spot" if inst.get("InstanceLifecycle") == "spot" else "on-demand",
        job_id=tags.get(TAG_JOB), attempt=int(attempt) if attempt and attempt.isdigit() else None,
        launched_at=inst.get("LaunchTime"),
        state_reason=(inst.get("StateReason") or {}).get("Code"),
        stopped_at=None if inst["State"]["Name"] in ("pending", "running")
        else transition_time(inst.get("StateTransitionReason") or ""),
    )


_TRANSITION = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")


def transition_time(reason: str) -> datetime | None:
    """EC2 writes when a machine stopped into StateTransitionReason, e.g. "User initiated
    (2026-12-02 07:58:01 GMT)" or "Service initiated (…)" (moto writes UTC): the meter bills
    up to that moment."""
    match = _TRANSITION.search(reason)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
