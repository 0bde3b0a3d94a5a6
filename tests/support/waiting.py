"""Waiting for events, not for the clock.

A test waits on the thing itself (a job's status, a file, a Slack call) and gives up only at a
deadline that a real hang reaches: on a 2-core machine running other work, a job takes several
times longer than on an idle one, and a short deadline there fails tests whose code is fine.
The deadline is never shorter than HANG_S (TRAINOPS_TEST_HANG_S, default 300 s), whatever a
caller asks; a caller's longer deadline stands. A timeout says what was awaited and the last
value seen, so a hang is diagnosed from the failure line alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

HANG_S = float(os.environ.get("TRAINOPS_TEST_HANG_S", "300"))
# With `observe`, a wait lasts while what it observes keeps changing (a job still training, only
# slowly): it fails HANG_S after the last change, or at MAX_WAIT_S whatever happens.
MAX_WAIT_S = float(os.environ.get("TRAINOPS_TEST_MAX_WAIT_S", "1800"))


class WaitTimeout(AssertionError):
    """What was awaited, for how long, and what was last observed."""


def deadline_s(timeout: float | None) -> float:
    return max(HANG_S, timeout or 0.0)


def wait_for(predicate: Callable[[], Any], timeout: float | None = None, interval: float = 0.1,
             what: str | None = None, observe: Callable[[], Any] | None = None):
    """Poll `predicate` until it returns something truthy; return that. `what` names the event
    ("job j-1 running"). `observe`, when given, says where things stand (a job's status and
    step, say): the wait goes on while its value keeps changing — slow progress is not a hang —
    and the timeout reports its last value; otherwise the predicate's last value is shown."""
    limit = deadline_s(timeout)
    started = last_change = time.monotonic()
    last: Any = None
    seen: Any = None
    while True:
        last = predicate()
        if last:
            return last
        now = time.monotonic()
        if observe is not None:
            current = _observed(observe)
            if current != seen:
                seen, last_change = current, now
        if now - last_change > limit or now - started > max(limit, MAX_WAIT_S):
            break
        time.sleep(interval)
    shown = seen if observe is not None else last
    raise WaitTimeout(f"waited {time.monotonic() - started:.0f} s for "
                      f"{what or _name(predicate)}; last seen: {shown!r}")


def _observed(observe: Callable[[], Any]) -> Any:
    try:
        return observe()
    except Exception as exc:  # noqa: BLE001 - the report must not hide the timeout
        return f"<observing failed: {exc!r}>"


def _name(predicate) -> str:
    code = getattr(predicate, "__code__", None)
    if code is None:
        return repr(predicate)
    return f"{code.co_name} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"
