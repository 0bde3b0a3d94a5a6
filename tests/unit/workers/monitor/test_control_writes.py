"""The monitor's control.json deadline writes (workers/monitor/control.py), on the real file store:
a tick's writes go out together, unchanged ones are not written again, each job's refresh comes
once a window with the jobs spread over it, and a failing store never leaves a write marked done.
Every read and write of a control.json is counted at the store's boundary."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest

from schemas.spec import utcnow
from schemas.store import FileStore
from tests.support.monitor_clock import mid_window
from workers.monitor import control

CAP = Decimal("100")


class CountingStore:
    """The real file store, counting control.json reads and writes; `barrier`, when set, holds
    each write until that many are in flight at once (writes one after another never meet)."""

    def __init__(self, inner: FileStore):
        self.inner, self.uri, self.calls = inner, inner.uri, Counter()
        self.barrier: threading.Barrier | None = None
        self.failing = False
        self._lock = threading.Lock()

    def read_bytes(self, key):
        if key.endswith("control.json"):
            with self._lock:
                self.calls["get"] += 1
        return self.inner.read_bytes(key)

    def write_bytes(self, key, data):
        if key.endswith("control.json"):
            if self.failing:
                raise OSError("injected store fault: control.json not written")
            if self.barrier is not None:
                self.barrier.wait()
            with self._lock:
                self.calls["put"] += 1
        return self.inner.write_bytes(key, data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def store(tmp_path, monkeypatch):
    control._written.clear()
    monkeypatch.setattr(control, "_clock", lambda: clock[0])
    yield CountingStore(FileStore(tmp_path / "store"))
    control._written.clear()


clock = [1_000_000.0]  # the monitor's clock, moved by the tests


def _mid_window(ids: list[str]) -> float:
    """A clock value that is not within a second of any of these jobs' window edges."""
    return mid_window(ids, 1_000_000.0)


def test_a_ticks_writes_go_out_together_and_unchanged_ones_are_not_written_again(store):
    ids = [f"j-{k:03d}" for k in range(40)]
    clock[0] = _mid_window(ids)
    deadline = utcnow() + timedelta(hours=2)
    store.barrier = threading.Barrier(4, timeout=20)  # four writes must be in flight at once
    assert control.write_deadlines(store, [(j, deadline, CAP) for j in ids]) == 40
    store.barrier = None
    assert store.calls == {"get": 40, "put": 40}
    assert all(control.read_control(store, j).deadline == deadline for j in ids)

    store.calls.clear()
    moved = deadline + timedelta(seconds=1)  # under DEADLINE_SLACK_S: not worth a write
    assert control.write_deadlines(store, [(j, moved, CAP) for j in ids]) == 0
    assert store.calls == {}  # steady state: nothing read, nothing written

    later = deadline + timedelta(minutes=5)
    items = [(j, later if j == "j-001" else deadline, CAP + 10 if j == "j-002" else CAP)
             for j in ids]
    assert control.write_deadlines(store, items) == 2
    assert store.calls == {"get": 2, "put": 2}
    assert control.read_control(store, "j-001").deadline == later
    assert control.read_control(store, "j-002").cap_usd == 110.0


def test_a_deadline_write_keeps_a_stop_another_writer_set(store):
    deadline = utcnow() + timedelta(hours=1)
    control.update_control(store, "j-stop", stop=True)
    assert control.write_deadlines(store, [("j-stop", deadline, CAP)]) == 1
    written = control.read_control(store, "j-stop")
    assert written.stop is True and written.deadline == deadline
    assert 3590 < written.seconds_left <= 3600


def test_every_job_is_rewritten_once_a_window_and_the_rewrites_are_spread(store):
    ids = [f"j-{k:03d}" for k in range(200)]
    deadline = utcnow() + timedelta(hours=2)
    items = [(j, deadline, CAP, 1) for j in ids]
    clock[0] = 1_000_000.0
    assert control.write_deadlines(store, items) == 200
    last = {j: clock[0] for j in ids}
    ticks = int(2 * control.REFRESH_S // 30)
    per_tick = []
    for _ in range(ticks):  # two windows of 30 s ticks
        clock[0] += 30
        before = {j: control.read_control(store, j).updated_at for j in ids}
        per_tick.append(control.write_deadlines(store, items))
        for j in ids:
            if control.read_control(store, j).updated_at != before[j]:
                last[j] = clock[0]
        assert all(clock[0] - at <= control.REFRESH_S + 30 for at in last.values())
    # Each job once a window (twice in two), about tick / REFRESH_S of them a tick: never a
    # burst of all of them in one tick.
    assert sum(per_tick) == 2 * 200
    expected = 200 * 30 / control.REFRESH_S
    assert max(per_tick) <= 2.5 * expected, per_tick


def test_a_deadline_is_written_again_once_the_agent_is_seen_alive(store):
    """Written before the machine booted, the document is read late; once the attempt's
    progress shows the agent alive, one more write starts its countdown on time."""
    clock[0] = _mid_window(["j-boot"])
    deadline = utcnow() + timedelta(hours=1)
    assert control.write_deadlines(store, [("j-boot", deadline, CAP, None)]) == 1
    assert control.write_deadlines(store, [("j-boot", deadline, CAP, None)]) == 0
    assert control.write_deadlines(store, [("j-boot", deadline, CAP, 1)]) == 1  # alive now
    assert control.write_deadlines(store, [("j-boot", deadline, CAP, 1)]) == 0
    assert control.write_deadlines(store, [("j-boot", deadline, CAP, None)]) == 0
    assert control.write_deadlines(store, [("j-boot", deadline, CAP, 2)]) == 1  # a relaunch
    assert store.calls == {"get": 3, "put": 3}


def test_a_failed_write_is_not_remembered_and_the_next_tick_writes_it(store):
    deadline = utcnow() + timedelta(hours=1)
    items = [(f"j-{k}", deadline, CAP) for k in range(5)]
    store.failing = True
    assert control.write_deadlines(store, items) == 0  # logged, no exception
    store.failing = False
    assert control.write_deadlines(store, items) == 5
    assert store.calls["put"] == 5


def test_a_new_process_writes_each_deadline_once_then_only_what_changes(store):
    ids = [f"j-{k:02d}" for k in range(10)]
    clock[0] = _mid_window(ids)
    deadline = utcnow() + timedelta(hours=1)
    items = [(j, deadline, CAP, 1) for j in ids]
    assert control.write_deadlines(store, items) == 10
    control._written.clear()  # a worker restarted: this process never wrote them
    store.calls.clear()
    assert control.write_deadlines(store, items) == 10
    assert store.calls == {"get": 10, "put": 10}
    store.calls.clear()
    assert control.write_deadlines(store, items) == 0
    assert store.calls == {}
