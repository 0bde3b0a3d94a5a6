"""Finding 2: a store fault must not defeat the cap.

The monitor records the stop in the database before it writes control.json, so a failing write
cannot keep the forced terminate from firing; the agent keeps the last valid control.json, never
trains without a deadline when it must have one, and at its deadline bounds the final upload by
the money left instead of waiting 600 s."""

from __future__ import annotations

import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal

from sqlmodel import select

from schemas.db.tables import Attempt
from schemas.settings import get_settings
from schemas.spec import utcnow
from schemas.status import JobStatus
from schemas.store import open_store
from tests.support.agent import Job, agent_env, file_store, token_cache  # noqa: F401
from tests.support.factories import quote
from tests.support.slack_harness import APPROVER, wait_until
from training.agent.main import run
from workers.monitor import cap
from workers.notify import ConsoleNotifier
from workers.providers.local import LocalProvider
from workers.rules.cap import STOP_GRACE
from workers.state import jobs

S = JobStatus
SLEEPER = f'{sys.executable} -c "import time; time.sleep(600)"'


class ControlWritesFail:
    """The real file store, except that every write of control.json fails (an S3 outage)."""

    def __init__(self, inner):
        self.inner = inner

    def write_bytes(self, key, data):
        if key.endswith("control.json"):
            raise OSError("injected store fault: control.json not written")
        return self.inner.write_bytes(key, data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _running_job(database, command: str) -> tuple[str, Attempt]:
    q = quote(budget=5, cap=5)
    q = q.model_copy(update={"request": q.request.model_copy(update={"command": command})})
    job_id = jobs.open_job(database, q, "UREQ", provider="local")
    assert jobs.decide(database, job_id, APPROVER, "approve", frozenset({APPROVER})).ok
    wait_until(lambda: jobs.get_job(database, job_id).status == S.running, timeout=60,
               what="the worker to launch the local agent")
    with database.session() as s:
        attempt = s.exec(select(Attempt).where(Attempt.job_id == job_id)).one()
    return job_id, attempt


def test_a_failing_control_write_still_ends_in_a_terminate(worker, database):
    settings = get_settings()
    job_id, attempt = _running_job(database, SLEEPER)
    provider = LocalProvider(settings, grace_s=5)
    store = ControlWritesFail(open_store(settings.store))
    now = utcnow()
    price = Decimal("36000")  # $10 a second: the next tick would cross the $5 cap

    done = cap.guard_job(database, store, ConsoleNotifier(), provider, job_id, attempt, price,
                         None, now, 1.0)
    assert "stop" in done
    job = jobs.get_job(database, job_id)
    assert job.status == S.stopping
    assert provider.find(job_id), "the agent never heard the stop: its machine is still up"

    later = now + STOP_GRACE + timedelta(seconds=1)
    done = cap.guard_job(database, store, ConsoleNotifier(), provider, job_id, attempt, price,
                         None, later, 1.0)
    assert done == ["terminate"]
    assert provider.find(job_id) == []
    assert jobs.get_job(database, job_id).status == S.stopped_at_cap


class HangingCheckpoints:
    """The real file store; the first checkpoint whose upload starts lands, and every later one
    hangs until the test ends, then fails (the connection dropped), so no later checkpoint can
    land after the agent exits. Which step lands first is the uploader's choice: on a loaded
    machine it may skip step-10 for a newer one before it starts, so the test asks the store."""

    def __init__(self, inner):
        self.inner, self.release = inner, threading.Event()
        self.landed: int | None = None

    def upload_file(self, key, path):
        if "/checkpoints/" in key and "/step-" in key:
            step = int(key.split("/step-")[1].split("/")[0])
            if self.landed is None:
                self.landed = step
            if step != self.landed:
                self.release.wait(600)
                raise OSError(f"injected store fault: upload of {key} dropped")
        return self.inner.upload_file(key, path)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_at_the_deadline_the_agent_does_not_wait_for_a_hung_upload(file_store, tmp_path):  # noqa: F811
    job = Job(file_store, "j-hung", epochs=1000, checkpoint_every_steps=10)
    job.control(seconds_left=40.0)
    hung = []
    started = time.monotonic()
    try:
        code = run(job.uri, tmp_path / "w",
                   wrap_store=lambda s: hung.append(HangingCheckpoints(s)) or hung[0])
        took = time.monotonic() - started
        # Read the store while the upload still hangs: what the agent left behind when it exited.
        manifests = job.manifests()
    finally:
        for store in hung:
            store.release.set()
    status = job.read("status.json")
    assert code == 5 and status["state"] == "deadline"
    assert took < 45, f"the agent ran {took:.0f} s past a 40 s deadline waiting for an upload"
    assert "money ran out first" in status["error"]
    landed = hung[0].landed
    assert landed is not None, "the agent never started a checkpoint upload in 40 s"
    assert manifests == [landed], "the checkpoint before the hung one stays valid"


def test_an_invalid_control_keeps_the_last_valid_deadline(file_store, tmp_path):  # noqa: F811
    job = Job(file_store, "j-garbage", epochs=1000, checkpoint_every_steps=10**6)
    job.control(seconds_left=30.0)
    result = {}
    thread = threading.Thread(target=lambda: result.update(code=run(job.uri, tmp_path / "w")),
                              daemon=True)
    thread.start()
    job.wait_training(timeout=120)
    job.store.write_bytes(f"{job.prefix}/control.json", b'{"stop": "maybe", "deadline": 7')
    thread.join(120)
    assert result.get("code") == 5, "garbage in control.json lifted the deadline"
    assert job.read("status.json")["state"] == "deadline"


def test_no_training_without_a_deadline_when_the_spec_needs_one(file_store, tmp_path):  # noqa: F811
    from training.agent import runtime

    job = Job(file_store, "j-nodeadline", require_deadline=True)
    job.control()  # a control.json, but no deadline in it
    original = runtime.Watchers.require_deadline
    try:  # a short wait, so the test does not sit out the agent's two minutes
        runtime.Watchers.require_deadline = lambda self: original(self, timeout_s=2, every_s=0.2)
        code = run(job.uri, tmp_path / "w")
    finally:
        runtime.Watchers.require_deadline = original
    status = job.read("status.json")
    assert code == 2 and status["state"] == "failed" and status["step"] == 0
    assert "refusing to train without one" in status["error"]
    assert not job.read("progress.json") or job.read("progress.json")["step"] == 0
