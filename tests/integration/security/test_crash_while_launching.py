"""Finding 4: a worker killed while provisioning left an unrecorded machine, and the job ran
twice. Now the launch carries the attempt's key (the client token; for the local provider, in
the agent's environment) and a restarted provision adopts that machine instead of launching a
second; a machine nobody records is found by the reaper, metered and terminated."""

from __future__ import annotations

import sys
from datetime import timedelta

from sqlmodel import select

from schemas import tasks
from schemas.db.tables import Attempt
from schemas.settings import get_settings
from schemas.spec import utcnow
from schemas.status import JobStatus
from schemas.store import job_prefix, open_store, write_model
from tests.support.factories import quote
from tests.support.slack_harness import APPROVER, wait_until
from workers.monitor import orphans
from workers.notify import ConsoleNotifier
from workers.providers import job_spec, provisioning
from workers.providers.base import LaunchRequest
from workers.providers.local import LocalProvider
from workers.queue.enqueue import enqueue
from workers.state import jobs
from workers.state.records import claim, update_fields

S = JobStatus
SLEEPER = f'{sys.executable} -c "import time; time.sleep(600)"'


def _crashed_launch(database) -> tuple[str, str]:
    """What a worker killed between the launch and its record leaves: a job in provisioning
    with an empty attempt, and an agent running that no record names. Returns (job, instance)."""
    settings = get_settings()
    q = quote(budget=5, cap=5)
    q = q.model_copy(update={"request": q.request.model_copy(update={"command": SLEEPER})})
    job_id = jobs.open_job(database, q, "UREQ", provider="local")
    with database.session() as s:  # approved without the hand-over: the test plays the worker
        assert claim(s, job_id, S.awaiting_approval, S.approved, approved_by=APPROVER)
    job, number, _options, _rank = provisioning._begin(database, job_id, "local")
    store = open_store(settings.store)
    spec = job_spec.build_spec(job, None, number, store.uri)
    write_model(store, f"{job_prefix(job_id)}/spec.json", spec)
    provider = LocalProvider(settings)
    machine = provider.launch(LaunchRequest(
        job_id=job_id, attempt=number, instance_type="local", market="local", zone=None,
        spec_uri=f"{store.uri}/{job_prefix(job_id)}/spec.json",
        client_token=f"{job_id}-{number}-crashed", user_data=None, reconciled=True))
    (provider.dir / f"{machine.instance_id}.json").unlink()  # the worker died before this
    assert not [r for r in provider._records() if r["job_id"] == job_id]
    return job_id, machine.instance_id


def _agents_of(job_id: str) -> int:
    from workers.providers.local import _agent_pids, _group_of, _launch_key_of

    return sum(1 for pid in _agent_pids() if _group_of(pid) == pid
               and (_launch_key_of(pid) or {}).get("job_id") == job_id)


def test_a_restarted_provision_adopts_the_machine(worker, database):
    job_id, instance_id = _crashed_launch(database)
    with database.session() as s:  # the dead worker's lease runs out
        update_fields(s, job_id, lease_until=utcnow() - timedelta(seconds=1))
    enqueue(tasks.PROVISION, job_id)  # the redelivered task, on the real worker
    job = wait_until(lambda: (j := jobs.get_job(database, job_id)).status == S.running and j,
                     timeout=60, what="the job running again")
    try:
        assert job.attempts[-1]["instance_id"] == instance_id
        assert any(e["kind"] == "launched" and "adopted" in e["message"] for e in job.events)
        assert _agents_of(job_id) == 1, "the job runs twice"
    finally:
        LocalProvider(get_settings()).terminate([instance_id])


def test_an_unrecorded_machine_is_metered_and_reaped(database):
    job_id, instance_id = _crashed_launch(database)
    with database.session() as s:  # the job ended meanwhile: nobody will ever adopt it
        assert claim(s, job_id, S.provisioning, S.cancelled)
    provider = LocalProvider(get_settings())
    reaped = orphans.reap(database, provider, ConsoleNotifier())
    assert reaped == [instance_id]
    assert _agents_of(job_id) == 0
    with database.session() as s:
        rows = s.exec(select(Attempt).where(Attempt.job_id == job_id)).all()
    assert [(a.instance_id, a.end_reason) for a in rows] == [(instance_id, "orphan reaped")]
    assert rows[0].launched_at is not None and rows[0].ended_at is not None
