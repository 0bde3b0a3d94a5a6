"""A restarted worker's first tick starts from what the last tick knew (workers/monitor/memo.py),
on the real file store: the agents' documents it had read are not read again, the deadlines it
had written are not written again, and anything that changed since is. Every document read and
control.json write is counted at the store's boundary."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest

from schemas.job import Progress
from schemas.spec import utcnow
from schemas.store import FileStore, job_prefix, write_agent_doc
from tests.support.monitor_clock import mid_window
from workers.monitor import control, memo, reads

CAP = Decimal("100")
IDS = [f"j-{k:02d}" for k in range(12)]


class CountingStore:
    """The real file store, counting GETs and PUTs by file name."""

    def __init__(self, inner: FileStore):
        self.inner, self.uri, self.calls = inner, inner.uri, Counter()

    def read_bytes(self, key):
        self.calls["get " + key.rsplit("/", 1)[-1]] += 1
        return self.inner.read_bytes(key)

    def write_bytes(self, key, data):
        self.calls["put " + key.rsplit("/", 1)[-1]] += 1
        return self.inner.write_bytes(key, data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _restart() -> None:
    """What a new worker process starts with: no caches, no memo loaded."""
    reads.forget()
    control._written.clear()
    memo.forget()


@pytest.fixture
def store(tmp_path, monkeypatch):
    _restart()
    # A fixed moment away from every job's window edge: no backstop refresh falls between the
    # two "processes".
    at = mid_window(IDS, 1_700_000_000.0)
    monkeypatch.setattr(control, "_clock", lambda: at)
    yield CountingStore(FileStore(tmp_path / "store"))
    _restart()



def _tick(store, deadline) -> dict[str, int]:
    """The part of a tick the memo serves: load the memo (a new process), read the agents'
    documents, write the deadlines of the jobs whose agent is alive, save the memo."""
    store.calls.clear()
    memo.warm(store)
    docs = reads.read_docs(store, IDS)
    control.write_deadlines(store, [(j, deadline, CAP, 1 if docs[j][1] else None) for j in IDS])
    memo.keep(store, IDS)
    return dict(store.calls)


def test_a_restarted_worker_reads_and_writes_only_what_changed(store):
    for j in IDS:
        write_agent_doc(store, job_prefix(j), "progress.json", Progress(phase="train", step=3))
    deadline = utcnow() + timedelta(hours=2)
    first = _tick(store, deadline)
    assert first["get progress.json"] == 12 and first["put control.json"] == 12
    assert first["put memo.json"] == 1 and first["get memo.json"] == 1  # none yet
    assert _tick(store, deadline) == {}  # quiet: nothing read, nothing written, memo unchanged

    _restart()
    write_agent_doc(store, job_prefix("j-05"), "progress.json", Progress(phase="train", step=4))
    after = _tick(store, deadline)
    # The memo itself, the one document rewritten, no deadline (none moved): then the memo again.
    assert after == {"get memo.json": 1, "get progress.json": 1, "put memo.json": 1}
    assert reads.read_docs(store, IDS)["j-05"][1].step == 4

    _restart()
    moved = _tick(store, deadline + timedelta(minutes=5))  # the money moved: every job's deadline
    assert moved["put control.json"] == 12 and "get progress.json" not in moved


def test_a_memo_only_remembers_live_jobs(store):
    for j in IDS:
        write_agent_doc(store, job_prefix(j), "progress.json", Progress(phase="train", step=1))
    _tick(store, utcnow() + timedelta(hours=1))
    memo.keep(store, IDS[:3])
    _restart()
    assert memo.warm(store)
    assert sorted(control.snapshot()) == IDS[:3]
    assert {key.split("/")[1] for _uri, key in reads.snapshot()} == set(IDS[:3])


@pytest.mark.parametrize("blob", [b"{not json", b'{"version": 99}', b'{"version": 1}'])
def test_an_unreadable_memo_is_ignored_and_everything_is_read(store, blob):
    write_agent_doc(store, job_prefix("j-00"), "progress.json", Progress(phase="train", step=1))
    store.inner.write_bytes(memo.MEMO_KEY, blob)
    assert not memo.warm(store)
    assert reads.read_docs(store, ["j-00"])["j-00"][1].step == 1
    assert not memo.warm(store), "a process loads the memo once"


def test_a_monitor_with_nothing_live_saves_nothing(store):
    assert not memo.keep(store, [])
    assert store.calls == {}


class FailingWrites(CountingStore):
    def write_bytes(self, key, data):
        super().write_bytes(key, data)
        raise OSError("injected store fault: read-only bucket")


@pytest.fixture
def said():
    """What memo.py logs, caught on its own logger: another test may have configured the
    trainops loggers not to propagate to the root, where caplog listens."""
    import logging

    lines: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler, level = Catch(level=logging.WARNING), memo.log.level
    memo.log.addHandler(handler)
    memo.log.setLevel(logging.WARNING)
    yield lines
    memo.log.removeHandler(handler)
    memo.log.setLevel(level)


def test_a_memo_that_cannot_be_saved_is_said_and_saved_on_a_later_tick(store, said):
    write_agent_doc(store, job_prefix("j-00"), "progress.json", Progress(phase="train", step=1))
    reads.read_docs(store, ["j-00"])
    failing = FailingWrites(store.inner)
    assert not memo.keep(failing, ["j-00"]), "a failed save returned as written"
    assert failing.calls["put memo.json"] == 1
    assert any("could not save the monitor's memo" in line for line in said)
    assert memo.keep(store, ["j-00"]), "the next tick did not try the save again"
    assert store.calls["put memo.json"] == 1


def test_a_memo_that_cannot_be_built_does_not_stop_the_tick(store, monkeypatch, said):
    def broken():
        raise TypeError("a cached document the memo cannot write")

    monkeypatch.setattr(reads, "snapshot", broken)
    assert memo.keep(store, IDS) is False
    assert any("could not save the monitor's memo" in line for line in said)
    assert store.calls == {}
