"""A job's story line (workers/state/records.py, add_event) is logged when its transaction
commits: a move that rolls back is not told as if it happened. Both databases."""

from __future__ import annotations

import logging

import pytest

from schemas.status import JobStatus
from tests.support.factories import quote
from workers.state import jobs
from workers.state.records import add_event, claim

S = JobStatus


class Rollback(Exception):
    pass


def test_a_rolled_back_move_is_not_logged_and_a_committed_one_is_after_commit(
        db, runner_env, caplog):
    job_id = jobs.open_job(db, quote(), "UREQ")
    caplog.set_level(logging.INFO, logger="trainops.jobs")
    caplog.clear()
    with pytest.raises(Rollback), db.session() as s:
        assert claim(s, job_id, S.awaiting_approval, S.rejected)
        add_event(s, job_id, "rejected", "UAPP", "rolled back below")
        raise Rollback
    assert jobs.get_job(db, job_id).status == S.awaiting_approval
    assert not [r for r in caplog.records if r.name == "trainops.jobs"]

    with db.session() as s:
        assert claim(s, job_id, S.awaiting_approval, S.rejected)
        add_event(s, job_id, "rejected", "UAPP", "by UAPP: not now")
        assert not [r for r in caplog.records if r.name == "trainops.jobs"], \
            "told before the commit"
    told = [r.getMessage() for r in caplog.records if r.name == "trainops.jobs"]
    assert told == [f"{job_id}: rejected: by UAPP: not now"]
    assert jobs.get_job(db, job_id).status == S.rejected
