"""A worker's log of a whole job fits on one screen and tells the job's story: a job run on the
local provider (the real agent on the tiny model) by the real worker, with the real monitor,
logged through the one logging set-up (workers/logs.py)."""

from __future__ import annotations

import io
import logging

import pytest

from schemas.settings import get_settings
from schemas.status import JobStatus
from tests.support.factories import quote
from tests.support.waiting import wait_for
from workers.logs import CELERY_KEPT, CHATTY, setup_logging
from workers.monitor.tick import tick
from workers.notify import RecordingNotifier
from workers.state import jobs

S = JobStatus
pytestmark = pytest.mark.slow
CHATTER = ("Found credentials", "alembic", "Context impl", "setup plugin", "urllib3",
           "Connected to", "received", "succeeded in", "kombu", "Starting new")


@pytest.fixture
def worker_log():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers),
             {n: logging.getLogger(n).level for n in (*CHATTY, *CELERY_KEPT)})
    stream = io.StringIO()
    setup_logging("info", stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in saved[1]:
            root.removeHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_a_local_jobs_worker_log_is_short_and_tells_its_story(runner_env, worker, db,
                                                              worker_log):
    from schemas.db.database import upgrade

    upgrade(db.url)  # as a starting worker would: alembic's INFO must not show
    job_id = jobs.open_job(db, quote(), "UREQ")
    assert jobs.decide(db, job_id, "UREQ", "approve", frozenset()).ok

    def ended_and_reported():
        tick(db, get_settings(), RecordingNotifier())  # the monitor, as beat would run it
        job = jobs.get_job(db, job_id)
        return job.status.is_terminal() and "report" in [e["kind"] for e in job.events] and job

    job = wait_for(ended_and_reported, interval=0.5, what=f"{job_id} to end with its report",
                   observe=lambda: jobs.get_job(db, job_id).status)
    assert job.status == S.succeeded, job.events
    text = worker_log.getvalue()
    lines = text.splitlines()
    assert 0 < len(lines) < 40, text
    for step in ("quoted", "approved", "attempt 1: provisioning", "attempt 1: launched",
                 "attempt 1: succeeded", "attempt 1: report"):
        assert any(f"trainops.jobs: {job_id}" in line and step in line for line in lines), (
            step, text)
    assert not [c for c in CHATTER if c in text], text
