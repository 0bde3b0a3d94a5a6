"""control.json, the control plane's word to a running agent: read, change some fields, write.

Three writers share the file (the monitor's deadline, a stop from a person or the cap, the
`trainops interrupt` rehearsal), so every write reads the current document first and changes
only the fields it owns: a deadline update never clears a stop.
"""

from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal

from schemas.spec import Control, utcnow
from schemas.store import Store, job_prefix, read_model, write_model

# The last (deadline, cap) written per job in this process: an unchanged deadline is not
# rewritten every tick (1,000 jobs would be 1,000 PUTs a tick for nothing).
_written: dict[str, tuple[datetime | None, float | None]] = {}
DEADLINE_SLACK_S = 2.0  # a deadline that moved less than this is not worth a write
# Read-change-write is not atomic: within one process (a worker's threads, the demo) two writers
# would otherwise lose one another's field — a tick's deadline write undoing a stop just set.
_lock = threading.Lock()


def control_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}/control.json"


def read_control(store: Store, job_id: str) -> Control:
    return read_model(store, control_key(job_id), Control) or Control()


def update_control(store: Store, job_id: str, **changes) -> Control:
    """Read control.json, apply `changes` (stop, interrupt, deadline, cap_usd), write it back."""
    if "cap_usd" in changes and isinstance(changes["cap_usd"], Decimal):
        changes["cap_usd"] = float(changes["cap_usd"])
    with _lock:
        control = read_control(store, job_id).model_copy(update={**changes, "updated_at": utcnow()})
        write_model(store, control_key(job_id), control)
    if "deadline" in changes or "cap_usd" in changes:
        _written[job_id] = (control.deadline, control.cap_usd)
    return control


def write_deadline(store: Store, job_id: str, deadline: datetime | None, cap_usd: Decimal,
                   *, force: bool = False) -> bool:
    """The agent's money deadline and cap, written when they changed (or `force`). True when
    written."""
    cap = float(cap_usd)
    last = _written.get(job_id)
    if not force and last is not None and last[1] == cap and _close(last[0], deadline):
        return False
    update_control(store, job_id, deadline=deadline, cap_usd=cap)
    return True


def forget(job_id: str) -> None:
    _written.pop(job_id, None)


def _close(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs((a - b).total_seconds()) < DEADLINE_SLACK_S
