"""The monitor reads only what the agents rewrote since its last tick (workers/monitor/reads.py),
on the real file store; every read of a document is counted at the store's boundary."""

from __future__ import annotations

from collections import Counter

import pytest

from schemas.job import AgentStatus, Progress
from schemas.store import FileStore, heartbeat_key, job_prefix, write_agent_doc, write_model
from workers.monitor import reads


class CountingStore:
    """The real file store, counting reads and listings."""

    def __init__(self, inner: FileStore):
        self.inner, self.uri, self.calls = inner, inner.uri, Counter()

    def read_bytes(self, key):
        self.calls["get"] += 1
        return self.inner.read_bytes(key)

    def list_versions(self, prefix):
        self.calls["list"] += 1
        return self.inner.list_versions(prefix)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def store(tmp_path):
    reads.forget()
    yield CountingStore(FileStore(tmp_path / "store"))
    reads.forget()


def _progress(store, job_id, step):
    write_agent_doc(store, job_prefix(job_id), "progress.json",
                    Progress(phase="train", step=step, total_steps=100))


def test_a_quiet_tick_reads_nothing_and_a_rewrite_is_read_in_the_next(store):
    for k in range(20):
        _progress(store, f"j-{k}", 1)
    ids = [f"j-{k}" for k in range(20)]
    first = reads.read_docs(store, ids)
    assert store.calls == {"list": 1, "get": 20}  # progress only: no status.json written yet
    assert all(first[j][0] is None and first[j][1].step == 1 for j in ids)

    store.calls.clear()
    assert reads.read_docs(store, ids) == first
    assert store.calls == {"list": 1}  # nothing changed: nothing read

    store.calls.clear()
    _progress(store, "j-3", 2)
    write_agent_doc(store, job_prefix("j-7"), "status.json", AgentStatus(state="succeeded"))
    third = reads.read_docs(store, ids)
    assert store.calls == {"list": 1, "get": 2}
    assert third["j-3"][1].step == 2
    assert third["j-7"][0].state == "succeeded" and third["j-7"][1].step == 1


def test_a_rewrite_with_the_same_size_is_still_a_change(store):
    _progress(store, "j-1", 5)
    assert reads.read_docs(store, ["j-1"])["j-1"][1].step == 5
    _progress(store, "j-1", 6)  # same length of JSON, possibly the same mtime tick
    assert reads.read_docs(store, ["j-1"])["j-1"][1].step == 6


def test_a_job_without_heartbeats_is_read_from_its_own_folder(store):
    write_model(store, f"{job_prefix('j-old')}/status.json", AgentStatus(state="failed"))
    _progress(store, "j-new", 3)
    docs = reads.read_docs(store, ["j-old", "j-new"])
    assert docs["j-old"][0].state == "failed" and docs["j-old"][1] is None
    store.calls.clear()
    reads.read_docs(store, ["j-old", "j-new"])
    assert store.calls == {"list": 1, "get": 2}  # the old way: both documents, every tick


def test_a_half_written_heartbeat_is_none_then_read_once_whole(store):
    store.write_bytes(heartbeat_key("j-1", "progress.json"), b'{"phase": "tr')
    assert reads.read_docs(store, ["j-1"])["j-1"] == (None, None)
    _progress(store, "j-1", 4)
    assert reads.read_docs(store, ["j-1"])["j-1"][1].step == 4


def test_jobs_no_longer_live_leave_the_cache(store):
    _progress(store, "j-1", 1)
    _progress(store, "j-2", 1)
    reads.read_docs(store, ["j-1", "j-2"])
    reads.read_docs(store, ["j-2"])
    assert {key for _uri, key in reads._cache} == {heartbeat_key("j-2", "progress.json")}


def test_file_store_versions_name_every_file_under_the_prefix(tmp_path):
    store = FileStore(tmp_path)
    store.write_bytes("heartbeats/j-1/progress.json", b"{}")
    store.write_bytes("heartbeats/j-2/status.json", b"{}")
    store.write_bytes("jobs/j-1/spec.json", b"{}")
    versions = store.list_versions("heartbeats/")
    assert set(versions) == {"heartbeats/j-1/progress.json", "heartbeats/j-2/status.json"}
    before = versions["heartbeats/j-1/progress.json"]
    store.write_bytes("heartbeats/j-1/progress.json", b"{}")
    assert store.list_versions("heartbeats/")["heartbeats/j-1/progress.json"] != before
    assert store.list_versions("nothing-here/") == {}
