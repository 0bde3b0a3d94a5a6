"""The spend guard end to end on the local provider: the real agent on the tiny model, a real
Celery worker on Redis (db 7) running the real monitor task, ticked every second by a real
embedded celery beat. The local price is chosen so the warning and the cap come within about a
minute (EC2's 60 s minimum per start is billed first, so no cap can be reached sooner)."""

from __future__ import annotations

import importlib.util
from decimal import Decimal

import pytest

from schemas.job import AgentStatus, JobSpec, Progress
from schemas.settings import get_settings
from schemas.status import JobStatus
from schemas.store import job_prefix, open_store, read_model
from tests.support.factories import option, quote
from tests.support.guard import TICK_S
from tests.support.runner import wait_for
from workers.monitor import control
from workers.monitor.tick import tick
from workers.notify import RecordingNotifier
from workers.providers import provisioning
from workers.providers.local import LocalProvider
from workers.state import jobs, spend_actions

S = JobStatus
APPROVERS = frozenset({"UAPP"})
pytestmark = [
    pytest.mark.slow,
    # Whole jobs of up to 1,200 steps on the local agent: on a loaded 2-core machine that is
    # several minutes. The waits inside fail on a hang (no progress); this is the last resort.
    pytest.mark.timeout(1200),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the train extra"),
]


def _price(monkeypatch, usd_per_hour: float) -> None:
    monkeypatch.setenv("TRAINOPS_LOCAL_PRICE_PER_HOUR", str(usd_per_hour))
    get_settings.cache_clear()


def _start(db, worker, *, cap: float, steps: int = 100000, run=True) -> str:
    """A tiny-model job approved by UAPP; running when `run` (through the worker). Many epochs
    of the demo data, so `steps` bounds it (about 25 steps a second on this CPU)."""
    q = quote(budget=cap, cap=cap, steps=steps, samples=None,
              options=[option("g5.xlarge", "spot", min(0.05, cap / 2), 0.4, None, budget=cap)])
    q = q.model_copy(update={"request": q.request.model_copy(update={"epochs": 1000})})
    job_id = jobs.open_job(db, q, "UREQ", provider="local")
    assert jobs.decide(db, job_id, "UAPP", "approve", APPROVERS).ok
    if run:  # the approval enqueued the provision task: the worker launches the agent
        wait_for(lambda: jobs.get_job(db, job_id).status == S.running, timeout=60)
    return job_id


def _store():
    return open_store(get_settings().store)


def _progress(job_id: str) -> Progress | None:
    return read_model(_store(), f"{job_prefix(job_id)}/progress.json", Progress)


def _checkpointed(job_id: str) -> bool:
    """Training is under way: the first checkpoint (step 50) has its manifest."""
    return bool(list((_store().root / job_prefix(job_id) / "checkpoints").glob("*/MANIFEST.json")))


def _kinds(db, job_id: str) -> list[str]:
    return [e["kind"] for e in jobs.get_job(db, job_id).events]


def _no_machine_left(job_id: str) -> bool:
    return LocalProvider(get_settings()).find(job_id) == []


# The two minute-long runs go on SQLite only: PostgreSQL sees the same code paths in the
# shorter tests here and in test_aws_guard.py.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_warning_then_stop_at_the_cap(runner_env, beat, db, monkeypatch):
    price = 36.0  # $0.01 a second: the 60 s minimum is $0.60, the cap $0.90 (30 s more)
    _price(monkeypatch, price)
    job_id = _start(db, beat, cap=0.90)
    job = wait_for(lambda: (j := jobs.get_job(db, job_id)).status == S.stopped_at_cap and
                   "report" in _kinds(db, job_id) and j, timeout=150, interval=0.5,
                   observe=lambda: _where(db, job_id))
    kinds = _kinds(db, job_id)
    # The warning first; then the stop: the monitor's (stopping) or the agent's own deadline,
    # whichever comes first (at a steady price and a 1 s tick the agent's margin of 15 s wins).
    assert kinds.index("warning") < kinds.index("stopped_at_cap") < kinds.index("cap_reached")
    overshoot = Decimal(str(job.spend_usd)) - Decimal("0.90")
    per_s = Decimal(str(price)) / 3600
    print(f"\ncap overshoot: ${overshoot:.4f} = {overshoot / per_s:.1f} s of billing "
          f"(tick {TICK_S} s; negative: stopped under the cap)")
    assert overshoot <= per_s * Decimal(TICK_S), overshoot  # within a tick of the cap
    assert overshoot >= -per_s * 25, overshoot  # and not stopped long before it
    cap_line = next(e["message"] for e in job.events if e["kind"] == "cap_reached")
    assert f"/train resume {job_id} budget=+50" in cap_line and "last checkpoint step" in cap_line
    chart = _store().root / job_prefix(job_id) / "reports" / "chart.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The monitor terminates the machine just after it records the end: wait for it.
    wait_for(lambda: _no_machine_left(job_id), timeout=30)


def test_an_approver_extends_the_cap_and_the_deadline_moves(runner_env, beat, db, monkeypatch):
    _price(monkeypatch, 36.0)
    job_id = _start(db, beat, cap=0.90)
    wait_for(lambda: "warning" in _kinds(db, job_id), timeout=60)
    wait_for(lambda: control.read_control(_store(), job_id).deadline is not None)
    before = control.read_control(_store(), job_id)
    refused = spend_actions.extend_cap(db, job_id, "UREQ", Decimal(1), APPROVERS)
    assert not refused.ok and "approver" in refused.message
    done = spend_actions.extend_cap(db, job_id, "UAPP", Decimal(1), APPROVERS)
    assert done.ok, done.message
    after = control.read_control(_store(), job_id)
    assert after.cap_usd == pytest.approx(1.90)
    # $1 more at $0.01/s is 100 s more before the money runs out.
    assert (after.deadline - before.deadline).total_seconds() == pytest.approx(100, abs=10)
    assert jobs.get_job(db, job_id).warned_at_cap is None  # re-armed for the new cap
    assert jobs.get_job(db, job_id).status == S.running
    assert spend_actions.stop_now(db, job_id, "UREQ", APPROVERS).ok
    wait_for(lambda: jobs.get_job(db, job_id).status == S.cancelled, timeout=60)
    # The monitor terminates the machine just after it records the end: wait for it.
    wait_for(lambda: _no_machine_left(job_id), timeout=30)


def test_stop_now_checkpoints_and_ends_the_run(runner_env, beat, db, monkeypatch):
    _price(monkeypatch, 3.6)
    job_id = _start(db, beat, cap=50.0)
    wait_for(lambda: _checkpointed(job_id), timeout=60)
    refused = spend_actions.stop_now(db, job_id, "USOMEONE", APPROVERS)
    assert not refused.ok
    assert spend_actions.stop_now(db, job_id, "UREQ", APPROVERS).ok
    assert jobs.get_job(db, job_id).status == S.stopping
    job = wait_for(lambda: (j := jobs.get_job(db, job_id)).status == S.cancelled and j,
                   timeout=60)
    agent = read_model(_store(), f"{job_prefix(job_id)}/status.json", AgentStatus)
    assert agent.state == "stopped" and agent.last_checkpoint_step is not None
    assert job.spend_usd < 50.0
    # The monitor terminates the machine just after it records the end: wait for it.
    wait_for(lambda: _no_machine_left(job_id), timeout=30)


def _where(db, job_id: str):
    """What a wait on a training job watches: it is not hung while this changes."""
    progress = _progress(job_id)
    return jobs.get_job(db, job_id).status, progress.attempt if progress else None, \
        progress.step if progress else None


def _interrupt_when_training(job_id: str) -> None:
    wait_for(lambda: _checkpointed(job_id), timeout=60, interval=0.05)
    control.update_control(_store(), job_id, interrupt=True)


def test_a_rehearsed_interruption_is_recovered_to_success(runner_env, beat, db, monkeypatch):
    _price(monkeypatch, 0.36)
    # Enough steps after the first checkpoint that the agent's 5 s control poll sees the
    # rehearsal on a loaded machine too.
    job_id = _start(db, beat, cap=50.0, steps=1200)
    _interrupt_when_training(job_id)
    job = wait_for(lambda: (j := jobs.get_job(db, job_id)).status.is_terminal()
                   and "report" in _kinds(db, job_id) and j, timeout=150, interval=0.5,
                   observe=lambda: _where(db, job_id))
    assert job.status == S.succeeded, job.events
    assert [a["end_reason"] for a in job.attempts] == ["interrupted", "succeeded"]
    assert job.recoveries == 1
    kinds = _kinds(db, job_id)
    assert kinds.index("interruption") < kinds.index("recovering") < kinds.index("succeeded")
    notice = next(e["message"] for e in job.events if e["kind"] == "interruption")
    assert "last verified checkpoint step" in notice and "spent $" in notice
    spec = read_model(_store(), f"{job_prefix(job_id)}/spec.json", JobSpec)
    assert spec.attempt == 2
    assert not control.read_control(_store(), job_id).interrupt  # cleared before the relaunch
    report = next(e["message"] for e in job.events if e["kind"] == "report")
    assert "succeeded" in report


def test_a_cancel_during_recovery_leaves_no_machine(runner_env, beat, db, monkeypatch):
    _price(monkeypatch, 0.36)
    job_id = _start(db, beat, cap=50.0)
    _interrupt_when_training(job_id)
    wait_for(lambda: jobs.get_job(db, job_id).recoveries == 1, timeout=60, interval=0.01)
    cancelled = jobs.cancel(db, job_id, "UREQ")
    assert cancelled.ok
    wait_for(lambda: _no_machine_left(job_id) and all(
        a["ended_at"] for a in jobs.get_job(db, job_id).attempts), timeout=60)
    job = jobs.get_job(db, job_id)
    assert job.status == S.cancelled
    during = next(e["message"] for e in job.events if e["kind"] == "cancelled")
    if "while running" not in during:  # caught mid-recovery (usually): recorded as such
        assert job.failure_cause == "cancelled_during_recovery", during


@SQLITE_ONLY
def test_the_deadline_holds_the_cap_with_the_monitor_stopped(runner_env, db, monkeypatch):
    price = 36.0
    _price(monkeypatch, price)
    job_id = _start(db, None, cap=0.75, run=False)  # no worker, no beat: the agent alone
    provisioning.provision(db, get_settings(), job_id, RecordingNotifier())
    store = _store()
    wait_for(lambda: (a := read_model(store, f"{job_prefix(job_id)}/status.json", AgentStatus))
             is not None and a.state == "deadline", timeout=90, interval=0.2)
    wait_for(lambda: _no_machine_left(job_id), timeout=30)
    tick(db, get_settings(), RecordingNotifier())  # the monitor comes back
    job = jobs.get_job(db, job_id)
    assert job.status == S.stopped_at_cap
    over = job.spend_usd - 0.75
    print(f"\ndeadline run: spent ${job.spend_usd:.4f} against a $0.75 cap")
    assert over <= price / 60  # at most about a minute of billing
