"""When the control plane renews a machine's per-job credentials (schemas/credentials.py).

Renewed RENEW_BEFORE their end: botocore on the machine re-reads them 15 minutes before their
end (its "advisory" refresh) and insists 10 minutes before (its "mandatory" one), so the new
ones are in the store before it looks. A machine whose credentials this process never issued
(the worker restarted) is renewed at once: the store may hold ones about to lapse.
"""

from __future__ import annotations

from datetime import datetime, timedelta

RENEW_BEFORE = timedelta(minutes=20)


def renewal_due(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or expires_at - now <= RENEW_BEFORE


def session_name(job_id: str, attempt: int) -> str:
    """STS RoleSessionName: at most 64 of [A-Za-z0-9+=,.@_-]; CloudTrail shows it beside every
    write the machine makes, so it names the job and the attempt."""
    safe = "".join(c if c.isalnum() or c in "+=,.@_-" else "-" for c in job_id)
    return f"trainops-{safe}-{attempt}"[:64]
