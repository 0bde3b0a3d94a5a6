"""The spend guard against moto's EC2 and S3: termination at the cap, an interruption seen
through the instance's state reason and recovered in another zone, and the batched describe.

moto cannot reclaim a spot machine, so the interruption's state reason is injected at our own
boundary (the provider's describe), on a machine really terminated in moto. Time is moved by
moving our own records (launched_at, stop_requested_at), never by sleeping."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from schemas.db.tables import Attempt, Job
from schemas.job import JobSpec
from schemas.settings import get_settings
from schemas.spec import utcnow
from schemas.status import JobStatus
from schemas.store import job_prefix, open_store, read_model
from tests.support.factories import option, quote
from workers.monitor import control
from workers.monitor.spend import spend_lines
from workers.monitor.tick import tick
from workers.notify import RecordingNotifier
from workers.providers import provisioning
from workers.providers.aws import AwsProvider
from workers.providers.base import Machine
from workers.state import jobs

S = JobStatus
APPROVERS = frozenset({"UAPP"})


class Counting(AwsProvider):
    """The real provider, counting its EC2 calls; `reclaimed` ids answer as spot-reclaimed."""

    def __init__(self, settings):
        super().__init__(settings)
        self.calls: dict[str, int] = {}
        self.reclaimed: set[str] = set()
        self.ec2.meta.events.register("before-call.ec2.*", self._count)

    def _count(self, model, **_):
        self.calls[model.name] = self.calls.get(model.name, 0) + 1

    def describe(self, instance_ids):
        found = super().describe(instance_ids)
        for i in self.reclaimed & set(found):
            found[i] = Machine(**{**found[i].__dict__,
                                  "state_reason": "Server.SpotInstanceTermination"})
        return found


def _launch(db, provider, q, decision="approve") -> str:
    job_id = jobs.open_job(db, q, "UREQ", provider="aws")
    assert jobs.decide(db, job_id, "UAPP", decision, APPROVERS).ok
    provisioning.provision(db, get_settings(), job_id, RecordingNotifier(), provider=provider)
    assert jobs.get_job(db, job_id).status == S.running
    return job_id


def _age(db, job_id: str, **fields) -> None:
    with db.session() as s:
        if "launched_at" in fields:
            s.exec(sa.update(Attempt).where(Attempt.job_id == job_id)
                   .values(launched_at=fields.pop("launched_at")))
        if fields:
            s.exec(sa.update(Job).where(Job.id == job_id).values(**fields))


def _state(ec2, instance_id: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance_id])[
        "Reservations"][0]["Instances"][0]["State"]["Name"]


def test_the_machine_is_terminated_at_the_cap(aws_env, db):
    provider = Counting(get_settings())
    # On-demand at $36/h ($0.01 a second) and a $3 cap: 5 minutes of running is $3.
    q = quote(budget=3.0, cap=3.0, options=[option("g5.xlarge", "on-demand", 1.0, 36.0, None,
                                                   budget=3.0)])
    job_id = _launch(db, provider, q, "approve_on_demand")
    instance = jobs.get_job(db, job_id).attempts[0]["instance_id"]
    notes = RecordingNotifier()
    _age(db, job_id, launched_at=utcnow() - timedelta(seconds=290))  # $2.90 spent by now
    counts = tick(db, get_settings(), notes, providers={"aws": provider})
    assert counts["warn"] == 1 and counts["stop"] == 1
    job = jobs.get_job(db, job_id)
    assert job.status == S.stopping and job.stop_reason == "cap"
    assert Decimal(str(job.spend_usd)) >= Decimal("2.90")
    assert control.read_control(open_store(get_settings().store), job_id).stop is True
    assert notes.warnings[0][1].cap_usd == Decimal("3")
    # The agent does not stop (there is none): two minutes after the request, terminate.
    _age(db, job_id, stop_requested_at=utcnow() - timedelta(minutes=2, seconds=1))
    counts = tick(db, get_settings(), notes, providers={"aws": provider})
    assert counts["terminate"] == 1
    job = jobs.get_job(db, job_id)
    assert job.status == S.stopped_at_cap
    assert _state(aws_env, instance) in ("shutting-down", "terminated")
    kinds = [e["kind"] for e in job.events]
    assert "cap_reached" in kinds and "report" in kinds
    assert [r[0] for r in notes.reports] == [job_id]
    lines = spend_lines(db, job_id)
    assert all(line["rule"] and line["price_source"] for line in lines)
    assert any("on-demand" in line["price_source"] for line in lines)
    assert any(line["rule"].startswith("gp3") for line in lines)  # the disk, too


def test_a_reclaimed_spot_machine_is_recovered_in_another_zone(aws_env, db):
    provider = Counting(get_settings())
    q = quote(budget=50.0, options=[option("g5.xlarge", "spot", 4.0, 0.40, "us-east-1a",
                                           budget=50.0)])
    job_id = _launch(db, provider, q)
    first = jobs.get_job(db, job_id).attempts[0]
    assert first["zone"] == "us-east-1a"
    aws_env.terminate_instances(InstanceIds=[first["instance_id"]])  # really gone in moto
    provider.reclaimed.add(first["instance_id"])
    notes = RecordingNotifier()
    relaunch = []

    def enqueue(j):  # the provision task, run here
        relaunch.append(j)
        provisioning.provision(db, get_settings(), j, notes, provider=provider)

    counts = tick(db, get_settings(), notes, providers={"aws": provider},
                          enqueue=enqueue)
    assert counts["moved"] == 1 and relaunch == [job_id]
    job = jobs.get_job(db, job_id)
    assert job.status == S.running and job.recoveries == 1
    assert [a["end_reason"] for a in job.attempts] == ["interrupted", None]
    second = job.attempts[1]
    assert second["zone"] not in (None, "us-east-1a")
    assert _state(aws_env, second["instance_id"]) in ("pending", "running")
    spec = read_model(open_store(get_settings().store), f"{job_prefix(job_id)}/spec.json",
                      JobSpec)
    assert spec.attempt == 2
    kinds = [e[1] for e in notes.events]
    assert kinds.index("interrupted") < kinds.index("interruption") < kinds.index("recovering")


def test_one_describe_and_one_price_read_for_many_jobs(aws_env, db):
    provider = Counting(get_settings())
    q = quote(budget=50.0, options=[option("g5.xlarge", "spot", 4.0, 0.40, "us-east-1a",
                                           budget=50.0)])
    ids = [_launch(db, provider, q) for _ in range(12)]
    provider.calls.clear()
    counts = tick(db, get_settings(), RecordingNotifier(), providers={"aws": provider})
    assert counts["attempts"] == 12 and counts["metered"] == 12
    # Running machines' states from one DescribeInstanceStatus (100 ids a call); the full
    # DescribeInstances only for machines neither pending nor running (none here).
    assert provider.calls.get("DescribeInstanceStatus") == 1
    assert provider.calls.get("DescribeInstances", 0) == 0
    assert provider.calls.get("DescribeSpotPriceHistory", 0) <= 1  # cached across ticks too
    assert all(jobs.get_job(db, j).spend_usd > 0 for j in ids)
    lines = spend_lines(db, ids[0])
    assert any("price history" in (line["price_source"] or "") for line in lines)
