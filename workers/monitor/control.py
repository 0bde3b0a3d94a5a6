"""control.json, the control plane's word to a running agent: read, change some fields, write.

Three writers share the file (the monitor's deadline, a stop from a person or the cap, the
`trainops interrupt` rehearsal), so every write reads the current document first and changes
only the fields it owns: a deadline update never clears a stop.

The monitor's deadline writes (docs/monitor-scale.md):
- unchanged content is not written: this process remembers the (deadline, cap) it last wrote per
  job, and a deadline that moved less than DEADLINE_SLACK_S with the same cap is skipped;
- the agent counts `seconds_left` from when it READ the file, so a document it read late (it was
  written before the machine booted) starts the countdown late. The document is therefore written
  again once the agent of the attempt is first seen alive (its progress.json), when it reads
  control.json within its 5 s poll; and, as a backstop, once per REFRESH_S window. Each job's
  windows are shifted by a fixed phase taken from its id, so the backstop spreads evenly;
- a tick's writes go out together (write_deadlines), PARALLEL_WRITES at a time. The read-change-
  write of one job's file is kept whole by a lock per job (striped), not one lock for all.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal

from schemas.job import Control
from schemas.spec import utcnow
from schemas.store import S3_MAX_CONNECTIONS, Store, job_prefix, read_model, write_model

log = logging.getLogger(__name__)
DEADLINE_SLACK_S = 2.0  # a deadline that moved less than this is not worth a write
# The backstop rewrite of a document whose content did not change (a countdown started late for
# another reason than a slow boot: reads that failed while a new document was written). The agent
# also holds the wall-clock deadline, so a late countdown matters only with a slow clock too.
REFRESH_S = 600.0
# Writes in flight at once: no more than the S3 client keeps connections (schemas/store.py),
# else urllib3 opens and drops extra connections on every burst.
PARALLEL_WRITES = S3_MAX_CONNECTIONS

# The last (deadline, cap, refresh window, attempt seen alive when written) per job, written by
# this process.
_written: dict[str, tuple[datetime | None, float | None, int, int | None]] = {}
# Read-change-write is not atomic: within one process (a worker's threads, the demo) two writers
# of the same job's file would otherwise lose one another's field — a tick's deadline write
# undoing a stop just set. Striped: writes to different jobs proceed together.
_locks = tuple(threading.Lock() for _ in range(64))
# Wall-clock seconds: the refresh windows must mean the same in another worker that loads this
# one's memo (memo.py). A clock step only moves one backstop write. A module attribute so a test
# can move time.
_clock = time.time


def _lock(job_id: str) -> threading.Lock:
    return _locks[zlib.crc32(job_id.encode()) % len(_locks)]


def control_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}/control.json"


def read_control(store: Store, job_id: str) -> Control:
    return read_model(store, control_key(job_id), Control) or Control()


def update_control(store: Store, job_id: str, **changes) -> Control:
    """Read control.json, apply `changes` (stop, interrupt, deadline, cap_usd), write it back."""
    return _update(store, job_id, changes)


def _update(store: Store, job_id: str, changes: dict, alive: int | None = None) -> Control:
    if "cap_usd" in changes and isinstance(changes["cap_usd"], Decimal):
        changes["cap_usd"] = float(changes["cap_usd"])
    with _lock(job_id):
        try:
            current = read_control(store, job_id)
        except Exception:  # noqa: BLE001 - unreadable or invalid: write a whole new document
            current = Control()
        if "deadline" in changes:  # the same money as a duration from this write (seconds_left)
            when = changes["deadline"]
            changes["seconds_left"] = None if when is None else (when - utcnow()).total_seconds()
        control = current.model_copy(update={**changes, "updated_at": utcnow()})
        write_model(store, control_key(job_id), control)
    if "deadline" in changes or "cap_usd" in changes:
        _written[job_id] = (control.deadline, control.cap_usd, _window(job_id, _clock()), alive)
    return control


def due(job_id: str, deadline: datetime | None, cap_usd: Decimal, alive: int | None = None
        ) -> bool:
    """Whether the monitor must write this deadline: it moved, the cap changed, the agent of
    attempt `alive` is seen alive and has not had a write since, the job's backstop window
    turned, or this process never wrote it."""
    last = _written.get(job_id)
    return not (last is not None and last[1] == float(cap_usd) and _close(last[0], deadline)
                and last[2] == _window(job_id, _clock()) and (alive is None or last[3] == alive))


def write_deadline(store: Store, job_id: str, deadline: datetime | None, cap_usd: Decimal,
                   alive: int | None = None, *, force: bool = False) -> bool:
    """The agent's money deadline and cap, written when due (or `force`). `alive`: the attempt
    whose agent the tick saw alive (its progress.json), None when none. True when written."""
    if not force and not due(job_id, deadline, cap_usd, alive):
        return False
    _update(store, job_id, {"deadline": deadline, "cap_usd": float(cap_usd)}, alive)
    return True


def write_deadlines(store: Store,
                    items: list[tuple[str, datetime | None, Decimal, int | None]]) -> int:
    """A tick's deadline writes (job, deadline, cap, attempt seen alive), those due only,
    PARALLEL_WRITES at a time; returns how many were written. A failed write is logged and retried by the next tick (nothing is
    remembered for it); it never stops the others, nor the cap: a stop is recorded in the
    database before its own control write (cap.py), and the terminate does not read the file."""
    todo = [item for item in items if due(*item)]

    def one(item) -> bool:
        job_id = item[0]
        try:
            return write_deadline(store, *item)
        except Exception:  # noqa: BLE001 - the next tick writes it again
            log.warning("could not write the deadline into control.json of %s", job_id,
                        exc_info=True)
            return False

    if len(todo) <= 1:
        return sum(map(one, todo))
    with ThreadPoolExecutor(max_workers=min(PARALLEL_WRITES, len(todo))) as pool:
        return sum(pool.map(one, todo))


def forget(job_id: str) -> None:
    _written.pop(job_id, None)


def snapshot() -> dict[str, tuple[datetime | None, float | None, int, int | None]]:
    """A copy of what this process last wrote per job, for the memo (memo.py)."""
    return dict(_written)


def remember(entries: dict[str, tuple[datetime | None, float | None, int, int | None]]) -> None:
    """Take a saved memo's entries; what this process wrote itself wins."""
    for job_id, value in entries.items():
        _written.setdefault(job_id, value)


def _window(job_id: str, at: float) -> int:
    """The refresh window `at` falls in, for this job: windows REFRESH_S long, shifted by a
    phase in [0, REFRESH_S) fixed by the job's id."""
    phase = (zlib.crc32(job_id.encode()) % 1000) / 1000 * REFRESH_S
    return int((at + phase) // REFRESH_S)


def _close(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs((a - b).total_seconds()) < DEADLINE_SLACK_S
