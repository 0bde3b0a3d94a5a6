"""A job that runs the user's own code (a reward file) needs an approver's click even within
budget, on both databases (issue #12; the rule is workers/rules/budget.py needs_approver_for_code)."""

from __future__ import annotations

import pytest
import redis

from schemas.status import JobStatus
from tests.support.factories import quote
from tests.support.runner import BROKER
from tests.support.services import area_queue
from workers.state import jobs

APPROVERS = frozenset({"UBOSS"})
QUEUE = area_queue("runner", "user-code")  # this run's own


@pytest.fixture(autouse=True)
def _queue():
    from workers.queue.app import app

    # Set and restored by hand: Celery's conf is a mapping, not an object monkeypatch can undo.
    before = app.conf.task_default_queue
    app.conf.task_default_queue = QUEUE
    r = redis.Redis.from_url(BROKER)
    r.delete(QUEUE)
    yield r
    r.delete(QUEUE)
    app.conf.task_default_queue = before


def _with_reward(reward: str):
    q = quote(budget=100)
    q.request = q.request.model_copy(update={"stage": "rl", "stages": ["rl"], "reward": reward,
                                             "text": f"rl smoke reward={reward}"})
    return q


def test_a_reward_file_within_budget_waits_for_an_approver(db, _queue):
    job_id = jobs.open_job(db, _with_reward("rewards/score.py:score"), "UREQ", "C1")
    denied = jobs.decide(db, job_id, "UREQ", "approve", APPROVERS)
    assert not denied.ok
    assert "runs your own code (reward=rewards/score.py:score)" in denied.message
    assert jobs.get_job(db, job_id).status == JobStatus.awaiting_approval
    assert _queue.llen(QUEUE) == 0  # nothing was handed to a worker
    ok = jobs.decide(db, job_id, "UBOSS", "approve", APPROVERS)
    assert ok.ok and ok.job.status == JobStatus.approved and ok.job.approved_by == "UBOSS"
    assert _queue.llen(QUEUE) == 1


def test_a_built_in_reward_is_approved_by_the_requester(db, _queue):
    job_id = jobs.open_job(db, _with_reward("exact"), "UREQ", "C1")
    assert jobs.decide(db, job_id, "UREQ", "approve", APPROVERS).ok


def test_the_requester_may_still_reject_user_code(db, _queue):
    job_id = jobs.open_job(db, _with_reward("score.py:fn"), "UREQ", "C1")
    out = jobs.decide(db, job_id, "UREQ", "reject", APPROVERS)
    assert out.ok and out.job.status == JobStatus.rejected
