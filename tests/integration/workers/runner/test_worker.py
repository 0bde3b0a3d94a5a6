"""The runner end to end: a real Celery worker on the real Redis, moto's server for EC2 and S3,
both databases. Capacity errors are injected at our boundary (AwsProvider._run_instances):
moto never runs out of machines."""

from __future__ import annotations

import threading
from datetime import timedelta

import boto3
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from schemas import tasks
from schemas.db.tables import Job
from schemas.job import AgentStatus
from schemas.settings import get_settings
from schemas.spec import utcnow
from schemas.status import JobStatus
from schemas.store import open_store, write_model
from tests.support.factories import quote
from tests.support.runner import wait_for
from workers.monitor.tick import tick
from workers.notify import RecordingNotifier
from workers.providers import provisioning
from workers.providers.aws import AwsProvider
from workers.queue.app import app
from workers.state import jobs

S = JobStatus
APPROVERS = frozenset({"UBOSS"})


def _instances(ec2, job_id, states=("pending", "running")):
    found = ec2.describe_instances(Filters=[
        {"Name": "tag:trainops:job", "Values": [job_id]},
        {"Name": "instance-state-name", "Values": list(states)}])
    return [i for r in found["Reservations"] for i in r["Instances"]]


def _status(db, job_id):
    return jobs.get_job(db, job_id).status


def test_ten_concurrent_approvals_launch_exactly_one_instance(aws_env, worker, db):
    job_id = jobs.open_job(db, quote(), "UREQ", "C1")
    barrier = threading.Barrier(10)
    outcomes = []

    def click(actor):
        barrier.wait()
        outcomes.append(jobs.decide(db, job_id, actor, "approve", APPROVERS))

    threads = [threading.Thread(target=click, args=(a,)) for a in ["UREQ", "UBOSS"] * 5]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(o.ok for o in outcomes) == 1
    wait_for(lambda: _status(db, job_id) == S.running)
    # A provision for the same job sent again (a duplicate message) must change nothing.
    app.send_task(tasks.PROVISION, args=[job_id])
    app.send_task(tasks.PROVISION, args=[job_id])
    wait_for(lambda: redis_empty(), timeout=10)
    assert len(_instances(aws_env, job_id)) == 1
    view = jobs.get_job(db, job_id)
    assert len(view.attempts) == 1 and view.attempts[0]["instance_id"]
    assert view.attempts[0]["instance_type"] == "g5.xlarge"
    spec = open_store(get_settings().store).read_bytes(f"jobs/{job_id}/spec.json")
    assert spec and b'"attempt": 1' in spec


def redis_empty():
    import redis

    from tests.support.runner import BROKER, QUEUE

    return redis.Redis.from_url(BROKER).llen(QUEUE) == 0


class WorkerKilled(BaseException):
    """What the database write never saw: the worker died right after run_instances."""


def test_a_redelivered_provision_after_a_crash_adopts_the_machine(aws_env, worker, db):
    job_id = jobs.open_job(db, quote(), "UREQ")
    with db.session() as s:  # approved, but no message (as if the broker lost it)
        s.exec(sa.update(Job).where(Job.id == job_id).values(
            status=S.approved.value, allowance_usd=100, approved_by="UREQ"))

    class Crashing(AwsProvider):
        def launch(self, request):
            super().launch(request)
            raise WorkerKilled

    with pytest.raises(WorkerKilled):
        provisioning.provision(db, get_settings(), job_id, RecordingNotifier(),
                               provider=Crashing(get_settings()))
    assert len(_instances(aws_env, job_id)) == 1
    assert _status(db, job_id) == S.provisioning and not jobs.get_job(db, job_id).attempts[0][
        "instance_id"]
    # Redelivered before the lease ran out: the crashed worker may still be alive, so wait.
    app.send_task(tasks.PROVISION, args=[job_id])
    wait_for(redis_empty, timeout=10)
    assert _status(db, job_id) == S.provisioning
    # After the visibility timeout (the lease is shorter), the redelivery takes over.
    with db.session() as s:
        s.exec(sa.update(Job).where(Job.id == job_id)
               .values(lease_until=utcnow() - timedelta(seconds=1)))
    app.send_task(tasks.PROVISION, args=[job_id])
    wait_for(lambda: _status(db, job_id) == S.running)
    assert len(_instances(aws_env, job_id)) == 1
    view = jobs.get_job(db, job_id)
    assert view.attempts[0]["instance_id"] == _instances(aws_env, job_id)[0]["InstanceId"]
    assert any(e["message"].startswith("adopted") for e in view.events)


def test_an_injected_capacity_error_falls_back_to_the_next_option(aws_env, worker, db,
                                                                   monkeypatch):
    real = AwsProvider._run_instances

    def no_g5(self, args):
        if args["InstanceType"] == "g5.xlarge":
            raise ClientError({"Error": {"Code": "InsufficientInstanceCapacity",
                                         "Message": "We currently do not have sufficient "
                                                    "g5.xlarge capacity"}}, "RunInstances")
        return real(self, args)

    monkeypatch.setattr(AwsProvider, "_run_instances", no_g5)
    job_id = jobs.open_job(db, quote(), "UREQ")
    assert jobs.decide(db, job_id, "UREQ", "approve", APPROVERS).ok
    wait_for(lambda: _status(db, job_id) == S.running)
    view = jobs.get_job(db, job_id)
    assert [a["instance_type"] for a in view.attempts] == ["g6.xlarge"]
    assert view.attempts[0]["zone"] == "us-east-1b"
    assert any(e["kind"] == "capacity" and "InsufficientInstanceCapacity" in e["message"]
               for e in view.events)
    [inst] = _instances(aws_env, job_id)
    assert inst["InstanceType"] == "g6.xlarge"


def test_no_capacity_anywhere_fails_with_its_cause(aws_env, worker, db, monkeypatch):
    def none_left(self, args):
        raise ClientError({"Error": {"Code": "InsufficientInstanceCapacity", "Message": "no"}},
                          "RunInstances")

    monkeypatch.setattr(AwsProvider, "_run_instances", none_left)
    job_id = jobs.open_job(db, quote(), "UREQ")
    jobs.decide(db, job_id, "UREQ", "approve", APPROVERS)
    wait_for(lambda: _status(db, job_id) == S.failed)
    view = jobs.get_job(db, job_id)
    assert view.failure_cause == "no_capacity" and not _instances(aws_env, job_id)


def test_an_option_the_agent_could_not_run_fails_the_job_before_any_launch(aws_env, worker, db):
    from tests.support.factories import option

    broken = option().model_copy(update={"gpus_used": 0})  # the spec needs >= 1 process
    job_id = jobs.open_job(db, quote(options=[broken]), "UREQ")
    jobs.decide(db, job_id, "UREQ", "approve", APPROVERS)
    wait_for(lambda: _status(db, job_id) == S.failed, what=f"job {job_id} failed")
    view = jobs.get_job(db, job_id)
    failed = next(e["message"] for e in view.events if e["kind"] == "failed")
    assert view.failure_cause == "precheck" and not _instances(aws_env, job_id)
    assert "spec is not valid (nproc_per_node:" in failed and "\n" not in failed


def test_the_reaper_terminates_an_orphan(aws_env, worker, db):
    provider = AwsProvider(get_settings())
    from workers.providers.base import LaunchRequest

    def launch(job, attempt=1):
        return provider.launch(LaunchRequest(
            job_id=job, attempt=attempt, instance_type="g5.xlarge", market="spot",
            zone="us-east-1a", spec_uri="s3://x/jobs/j/spec.json", client_token=f"{job}-{attempt}"))

    owned_job = jobs.open_job(db, quote(), "UREQ")
    jobs.decide(db, owned_job, "UREQ", "approve", APPROVERS)
    wait_for(lambda: _status(db, owned_job) == S.running)
    ghost = launch("j-ghost0")  # a job this database never heard of
    done_job = jobs.open_job(db, quote(), "UREQ")
    jobs.cancel(db, done_job, "UREQ")
    leaked = launch(done_job)  # a machine that outlived its job
    app.send_task(tasks.REAP)
    wait_for(lambda: not _instances(aws_env, "j-ghost0") and not _instances(aws_env, done_job))
    assert len(_instances(aws_env, owned_job)) == 1
    events = jobs.get_job(db, done_job).events
    assert any(e["kind"] == "reaped" and leaked.instance_id in e["message"] for e in events)
    assert ghost.instance_id


def test_cancel_terminates_the_machine(aws_env, worker, db):
    job_id = jobs.open_job(db, quote(), "UREQ")
    jobs.decide(db, job_id, "UREQ", "approve", APPROVERS)
    wait_for(lambda: _status(db, job_id) == S.running)
    out = jobs.cancel(db, job_id, "UREQ")
    assert out.ok and out.job.status == S.cancelled
    wait_for(lambda: not _instances(aws_env, job_id))
    wait_for(lambda: jobs.get_job(db, job_id).attempts[0]["ended_at"] is not None)
    control = open_store(get_settings().store).read_bytes(f"jobs/{job_id}/control.json")
    assert b'"stop": true' in control


def test_the_monitor_moves_a_finished_job_and_frees_its_machine(aws_env, worker, db):
    job_id = jobs.open_job(db, quote(), "UREQ")
    jobs.decide(db, job_id, "UREQ", "approve", APPROVERS)
    wait_for(lambda: _status(db, job_id) == S.running)
    store = open_store(get_settings().store)
    notes = RecordingNotifier()
    assert tick(db, get_settings(), notes)["moved"] == 0  # running, no word yet
    write_model(store, f"jobs/{job_id}/status.json",
                AgentStatus(state="succeeded", attempt=1, step=5, final_loss=1.25))
    assert tick(db, get_settings(), notes)["moved"] == 1
    assert _status(db, job_id) == S.succeeded
    assert not _instances(aws_env, job_id)
    assert notes.events[-1][:2] == (job_id, "succeeded")


def test_an_interrupted_spot_machine_is_noticed(aws_env, worker, db):
    job_id = jobs.open_job(db, quote(), "UREQ")
    jobs.decide(db, job_id, "UREQ", "approve", APPROVERS)
    wait_for(lambda: _status(db, job_id) == S.running)
    [inst] = _instances(aws_env, job_id)
    boto3.client("ec2", region_name="us-east-1").terminate_instances(
        InstanceIds=[inst["InstanceId"]])  # moto cannot reclaim spot; a vanished machine
    tick(db, get_settings(), RecordingNotifier())
    view = jobs.get_job(db, job_id)
    assert view.status == S.failed and view.failure_cause == "instance_lost"


def test_the_agent_bundle_holds_the_agent_and_the_schemas(aws_env):
    import io
    import zipfile

    from workers.providers import bundle
    from workers.providers.bundle import upload_bundle, user_data

    bundle._uploaded.clear()  # moto was reset: this bucket is new
    store = open_store(get_settings().store)
    uri = upload_bundle(store)
    data = store.read_bytes(uri.removeprefix(store.uri + "/"))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "training/agent/main.py" in names and "schemas/spec.py" in names
    assert not any("__pycache__" in n or n.startswith("workers/") for n in names)
    script = user_data(job_id="j-1", attempt=2, spec_uri="s3://b/jobs/j-1/spec.json",
                       bundle_uri=uri, region="us-east-1")
    assert "TRAINOPS_POWER_OFF_AT_DEADLINE=1" in script
    assert "-m training.agent --spec s3://b/jobs/j-1/spec.json" in script
    assert "trap 'shutdown -h now' EXIT" in script


def test_the_monitor_picks_up_a_job_whose_provision_message_was_lost(aws_env, worker, db):
    job_id = jobs.open_job(db, quote(), "UREQ")
    with db.session() as s:  # approved while the broker was down: no message was sent
        s.exec(sa.update(Job).where(Job.id == job_id).values(
            status=S.approved.value, allowance_usd=100, approved_by="UREQ",
            updated_at=utcnow() - timedelta(minutes=5)))
    app.send_task(tasks.MONITOR_TICK)
    wait_for(lambda: _status(db, job_id) == S.running)
    assert len(_instances(aws_env, job_id)) == 1
