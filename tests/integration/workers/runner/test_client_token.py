"""The launch's idempotency key is on the attempt row (issue 14): written before RunInstances is
called, so a worker that dies mid-launch leaves it for the operator, and the provision that
takes over sends the very same ClientToken (EC2 then answers with the machine it already made
instead of a second one). moto's server is EC2; RunInstances' arguments are read at our
boundary (AwsProvider._run_instances), as the capacity tests inject errors there."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from schemas import tasks
from schemas.db.tables import Attempt, Job
from schemas.settings import get_settings
from schemas.spec import utcnow
from schemas.status import JobStatus
from tests.support.factories import quote
from tests.support.runner import wait_for
from workers.notify import RecordingNotifier
from workers.providers import provisioning
from workers.providers.aws import AwsProvider
from workers.queue.app import app
from workers.state import jobs

S = JobStatus


class WorkerKilled(BaseException):
    """The worker died after recording the attempt, before RunInstances went out."""


def _attempt(db, job_id) -> Attempt:
    with db.session() as s:
        return s.exec(select(Attempt).where(Attempt.job_id == job_id)).one()


def test_the_client_token_is_on_the_attempt_and_a_rerun_sends_it_again(aws_env, worker, db, monkeypatch):
    sent: list[str] = []
    real = AwsProvider._run_instances

    def recording(self, args):
        sent.append(args["ClientToken"])
        return real(self, args)

    monkeypatch.setattr(AwsProvider, "_run_instances", recording)
    job_id = jobs.open_job(db, quote(), "UREQ")
    with db.session() as s:  # approved, no message: the test plays the first worker
        s.exec(sa.update(Job).where(Job.id == job_id).values(
            status=S.approved.value, allowance_usd=100, approved_by="UREQ"))

    class Dying(AwsProvider):
        def launch(self, request):
            raise WorkerKilled

    with pytest.raises(WorkerKilled):
        provisioning.provision(db, get_settings(), job_id, RecordingNotifier(), provider=Dying(get_settings()))
    crashed = _attempt(db, job_id)
    assert crashed.instance_id is None and sent == []
    assert crashed.client_token and crashed.client_token.startswith(f"{job_id}-1-")
    assert len(crashed.client_token) <= 64  # EC2's limit for ClientToken

    with db.session() as s:  # the dead worker's lease runs out; the redelivered task takes over
        s.exec(sa.update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1)))
    app.send_task(tasks.PROVISION, args=[job_id])
    wait_for(lambda: jobs.get_job(db, job_id).status == S.running)

    launched = _attempt(db, job_id)
    assert sent == [crashed.client_token]
    assert launched.client_token == crashed.client_token and launched.instance_id
