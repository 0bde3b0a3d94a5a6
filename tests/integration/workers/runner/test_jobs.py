"""The jobs service on both databases: claims, decisions, cancel, expiry (no worker needed:
the provision messages go to Redis and are cleared)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import redis

from schemas.spec import utcnow
from schemas.status import IllegalTransition, JobStatus
from tests.support.factories import option, quote
from tests.support.runner import BROKER
from tests.support.services import area_queue
from workers.state import jobs
from workers.state.records import claim

S = JobStatus
APPROVERS = frozenset({"UBOSS"})


QUEUE = area_queue("runner", "no-worker")  # this run's own: another run never counts ours


class _Queue:
    """This module's messages go to a queue no worker reads, so they can be counted."""

    def __init__(self):
        self.redis = redis.Redis.from_url(BROKER)

    def llen(self, _name: str) -> int:
        return self.redis.llen(QUEUE)


@pytest.fixture(autouse=True)
def _empty_queue():
    from workers.queue.app import app

    # Set and restored by hand: Celery's conf is a mapping, not an object monkeypatch can undo.
    before = app.conf.task_default_queue
    app.conf.task_default_queue = QUEUE
    queue = _Queue()
    queue.redis.delete(QUEUE)
    yield queue
    queue.redis.delete(QUEUE)
    app.conf.task_default_queue = before


def test_open_job_stores_the_quote_and_a_quoted_event(db):
    q = quote(budget=100)
    job_id = jobs.open_job(db, q, "UREQ", "C1")
    assert job_id.startswith("j-") and len(job_id) == 8
    job = jobs.get_job(db, job_id)
    assert job.status == S.awaiting_approval and job.requester == "UREQ"
    assert job.quote.options == q.options and job.budget_usd == 100.0
    assert [e["kind"] for e in job.events] == ["quoted"]
    jobs.set_root_message(db, job_id, "C1", "1700000000.000100")
    assert jobs.get_job(db, job_id).root_ts == "1700000000.000100"


def test_approve_enqueues_exactly_one_provision(db, _empty_queue):
    job_id = jobs.open_job(db, quote(), "UREQ")
    out = jobs.decide(db, job_id, "UREQ", "approve", APPROVERS)
    assert out.ok and out.job.status == S.approved and out.job.approved_by == "UREQ"
    assert _empty_queue.llen("celery") == 1
    again = jobs.decide(db, job_id, "UBOSS", "approve", APPROVERS)
    assert not again.ok and "already approved by UREQ" in again.message
    assert _empty_queue.llen("celery") == 1


def test_ten_concurrent_approvals_have_one_winner(db, _empty_queue):
    job_id = jobs.open_job(db, quote(), "UREQ")
    outcomes, barrier = [], threading.Barrier(10)

    def click(actor):
        barrier.wait()
        outcomes.append(jobs.decide(db, job_id, actor, "approve", APPROVERS))

    threads = [threading.Thread(target=click, args=("UREQ" if i % 2 else "UBOSS",))
               for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(o.ok for o in outcomes) == 1
    assert all(o.message for o in outcomes)
    job = jobs.get_job(db, job_id)
    assert [e["kind"] for e in job.events].count("approved") == 1
    assert _empty_queue.llen("celery") == 1


def test_overrun_needs_an_approver_and_raises_the_cap(db):
    q = quote(budget=3, options=[option(cost=4.0, budget=3)])
    job_id = jobs.open_job(db, q, "UREQ")
    denied = jobs.decide(db, job_id, "UREQ", "approve", APPROVERS)
    assert not denied.ok and "approver" in denied.message
    assert jobs.get_job(db, job_id).status == S.awaiting_approval
    ok = jobs.decide(db, job_id, "UBOSS", "approve", APPROVERS)
    assert ok.ok and ok.job.cap_usd == 4.0 and ok.job.allowance_usd == 4.0


def test_reject_and_unknown_jobs(db):
    job_id = jobs.open_job(db, quote(), "UREQ")
    assert jobs.decide(db, job_id, "UREQ", "reject", APPROVERS).job.status == S.rejected
    assert not jobs.decide(db, job_id, "UREQ", "approve", APPROVERS).ok
    missing = jobs.decide(db, "j-nope00", "UREQ", "approve", APPROVERS)
    assert not missing.ok and missing.job is None and "j-nope00" in missing.message
    assert jobs.get_job(db, "j-nope00") is None
    assert not jobs.cancel(db, "j-nope00", "UREQ").ok


def test_cancel_is_idempotent_and_ended_jobs_stay_ended(db):
    job_id = jobs.open_job(db, quote(), "UREQ")
    first = jobs.cancel(db, job_id, "UREQ")
    assert first.ok and first.job.status == S.cancelled
    assert jobs.cancel(db, job_id, "UREQ").ok
    assert [e["kind"] for e in jobs.get_job(db, job_id).events].count("cancelled") == 1
    other = jobs.open_job(db, quote(), "UREQ")
    jobs.decide(db, other, "UREQ", "reject", APPROVERS)
    assert not jobs.cancel(db, other, "UREQ").ok


def test_expired_quotes(db):
    old = jobs.open_job(db, quote(), "UREQ", ttl_h=0.0001)
    fresh = jobs.open_job(db, quote(), "UREQ")
    assert jobs.expire_quotes(db, utcnow() + timedelta(seconds=5)) == [old]
    assert jobs.get_job(db, old).status == S.expired
    assert jobs.get_job(db, fresh).status == S.awaiting_approval
    late = jobs.open_job(db, quote(), "UREQ", ttl_h=0.000001)
    import time

    time.sleep(0.01)
    out = jobs.decide(db, late, "UREQ", "approve", APPROVERS)
    assert not out.ok and "expired" in out.message and out.job.status == S.expired


def test_lost_claims_are_no_ops_and_illegal_moves_raise(db):
    job_id = jobs.open_job(db, quote(), "UREQ")
    with db.session() as s:
        assert claim(s, job_id, S.awaiting_approval, S.approved)
    with db.session() as s:  # a second worker with the same stale view loses, quietly
        assert not claim(s, job_id, S.awaiting_approval, S.approved)
        assert not claim(s, job_id, S.awaiting_approval, S.rejected)
    assert jobs.get_job(db, job_id).status == S.approved
    with db.session() as s, pytest.raises(IllegalTransition):
        claim(s, job_id, S.approved, S.succeeded)
    assert jobs.get_job(db, job_id).status == S.approved


def test_list_jobs(db):
    a = jobs.open_job(db, quote(), "UREQ")
    b = jobs.open_job(db, quote(), "UREQ")
    jobs.cancel(db, a, "UREQ")
    assert {j.job_id for j in jobs.list_jobs(db)} == {a, b}
    assert [j.job_id for j in jobs.list_jobs(db, live_only=True)] == [b]
    assert len(jobs.list_jobs(db, limit=1)) == 1
