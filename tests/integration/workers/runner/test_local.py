"""The local provider runs the real training agent as a subprocess (model=tiny: no downloads),
through the real worker, and the monitor reads its last word from the file store."""

from __future__ import annotations

import importlib.util
import os

import pytest

from schemas.job import Control
from schemas.settings import get_settings
from schemas.status import JobStatus
from schemas.store import open_store, read_model, write_model
from tests.support.factories import quote
from tests.support.runner import wait_for
from workers.monitor.tick import tick
from workers.notify import RecordingNotifier
from workers.providers.local import LocalProvider, _alive
from workers.state import jobs

S = JobStatus
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("training.agent") is None,
                       reason="training/agent/main.py (engineer T) is not there yet"),
]


def _tick_until(db, job_id, statuses, timeout=120):
    def done():
        tick(db, get_settings(), RecordingNotifier())
        return jobs.get_job(db, job_id).status in statuses

    wait_for(done, timeout=timeout, interval=0.5)
    return jobs.get_job(db, job_id)


def test_a_local_job_runs_the_agent_to_the_end(runner_env, worker, db):
    job_id = jobs.open_job(db, quote(), "UREQ")
    assert jobs.decide(db, job_id, "UREQ", "approve", frozenset()).ok
    wait_for(lambda: jobs.get_job(db, job_id).status == S.running)
    instance = jobs.get_job(db, job_id).attempts[0]["instance_id"]
    assert instance.startswith("local-")
    job = _tick_until(db, job_id, {S.succeeded, S.failed})
    assert job.status == S.succeeded, job.events
    assert not _alive(int(instance.split("-")[1]))
    assert job.attempts[0]["end_reason"] == "succeeded"


def test_cancel_stops_the_local_agent(runner_env, worker, db):
    job_id = jobs.open_job(db, quote(steps=100000, samples=None), "UREQ")  # runs until stopped
    jobs.decide(db, job_id, "UREQ", "approve", frozenset())
    wait_for(lambda: jobs.get_job(db, job_id).status == S.running)
    pid = int(jobs.get_job(db, job_id).attempts[0]["instance_id"].split("-")[1])
    assert jobs.cancel(db, job_id, "UREQ").ok
    wait_for(lambda: not _alive(pid), timeout=30)
    wait_for(lambda: jobs.get_job(db, job_id).attempts[0]["ended_at"] is not None)
    assert LocalProvider(get_settings()).list_tagged() == []


def test_interrupt_rehearsal_reaches_the_agent(runner_env, worker, db):
    job_id = jobs.open_job(db, quote(steps=100000, samples=None), "UREQ")
    jobs.decide(db, job_id, "UREQ", "approve", frozenset())
    wait_for(lambda: jobs.get_job(db, job_id).status == S.running)
    store = open_store(get_settings().store)
    key = f"jobs/{job_id}/control.json"
    control = read_model(store, key, Control)
    write_model(store, key, control.model_copy(update={"interrupt": True}))
    # The same tick that sees the interruption starts the recovery (issue 6): provisioning.
    job = _tick_until(db, job_id, {S.interrupted, S.provisioning, S.succeeded, S.failed})
    assert job.status in (S.interrupted, S.provisioning), job.events
    assert job.attempts[0]["end_reason"] == "interrupted"
    assert os.path.exists(store.root / "jobs" / job_id / "status.json")
