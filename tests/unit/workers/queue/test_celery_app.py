"""The Celery policy, read off the real app: names, acks_late, retries, beat, Redis."""

from __future__ import annotations

from schemas.settings import Settings
from workers.providers.base import TransientError
from workers.queue.app import VISIBILITY_TIMEOUT_S, beat_schedule, make_celery


def test_every_beat_entry_has_a_cadence_and_an_expiry_within_it():
    schedule = beat_schedule(Settings(TRAINOPS_MONITOR_INTERVAL=30, TRAINOPS_REAPER_INTERVAL=600))
    assert {e["task"] for e in schedule.values()} == {
        "trainops.jobs.monitor_tick", "trainops.jobs.reap", "trainops.jobs.expire_quotes"}
    for entry in schedule.values():
        assert 0 < entry["options"]["expires"] <= entry["schedule"]
    assert schedule["reaper"]["schedule"] == 600 and schedule["monitor-tick"]["schedule"] == 30


def test_tasks_are_named_idempotent_and_retry_only_transient_errors():
    app = make_celery(Settings(TRAINOPS_BROKER_URL="redis://127.0.0.1:6379/5"))
    import workers.queue.tasks  # noqa: F401 - registers the shared tasks on every app

    ours = {name: task for name, task in app.tasks.items() if name.startswith("trainops.jobs.")}
    assert set(ours) == {"trainops.jobs.provision", "trainops.jobs.terminate",
                         "trainops.jobs.monitor_tick", "trainops.jobs.reap",
                         "trainops.jobs.expire_quotes"}
    for task in ours.values():
        assert task.acks_late
        assert tuple(getattr(task, "autoretry_for", ())) in ((), (TransientError,))
    assert ours["trainops.jobs.provision"].retry_jitter
    transport = app.conf.broker_transport_options
    assert transport["visibility_timeout"] == VISIBILITY_TIMEOUT_S >= 3600
    assert app.conf.broker_url == "redis://127.0.0.1:6379/5"
