"""The monitor's refresh windows, for tests that fix its clock (workers/monitor/control.py)."""

from __future__ import annotations


def mid_window(ids: list[str], start: float) -> float:
    """A clock value from `start` on that is not within a second of any of these jobs' window
    edges, so a test's writes never straddle a backstop refresh."""
    from workers.monitor import control

    for tenth in range(6000):
        at = start + tenth / 10
        if all(control._window(j, at - 1) == control._window(j, at + 1) for j in ids):
            return at
    raise AssertionError("no clock value away from every window edge")
