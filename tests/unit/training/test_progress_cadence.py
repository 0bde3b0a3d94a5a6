"""Progress that moves (issue 13): progress.json is written when the step or the phase changes,
at most every `progress_every_s`, and not rewritten while nothing moves (the heartbeat, every
`heartbeat_s`, still writes it)."""

from __future__ import annotations

import time

from schemas.job import JobSpec, Progress
from schemas.store import FileStore, read_model
from training.agent.runtime import Signals, Tracker, Watchers


def _written(store) -> Progress | None:
    return read_model(store, "jobs/j-p/progress.json", Progress)


def _wait(predicate, timeout_s: float = 10.0, what: str = ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout_s} s for {what}")


def test_a_new_step_reaches_progress_json_within_progress_every_s(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")  # no IMDS
    store = FileStore(tmp_path / "store")
    spec = JobSpec(job_id="j-p", store_uri=f"file://{tmp_path}/store/jobs/j-p", model="tiny",
                   heartbeat_s=30, progress_every_s=1.0, notice_poll_s=30)
    tracker = Tracker(1, tmp_path / "m.jsonl")
    watchers = Watchers(spec, store, "jobs/j-p", Signals(), tracker, tmp_path / "a.log")
    watchers.start()
    try:
        _wait(lambda: _written(store), what="the first progress.json")
        tracker.total_steps = 100
        tracker.start_training(0, 0)
        tracker.record(1, 2.5, 512)
        moved = _wait(lambda: (p := _written(store)) and p.step == 1 and p, timeout_s=5,
                      what="step 1 in progress.json (heartbeat is 30 s away)")
        assert moved.phase == "train" and moved.loss == 2.5
        tracker.record(2, 2.4, 512)
        tracker.record(3, 2.3, 512)
        at_three = _wait(lambda: (p := _written(store)) and p.step == 3 and p, timeout_s=5,
                         what="step 3")
        # Not more often than progress_every_s: two writes at least 1 s apart.
        assert (at_three.updated_at - moved.updated_at).total_seconds() >= 0.9
        assert at_three.tokens_per_s > 0
        # Nothing moves: no rewrite before the heartbeat.
        time.sleep(1.5)
        assert _written(store).updated_at == at_three.updated_at
    finally:
        watchers.stop()
