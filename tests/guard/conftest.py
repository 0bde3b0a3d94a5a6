"""Fixtures for the spend guard's end-to-end tests: a real Celery worker on the real Redis
(database 7) with the real monitor task, ticked by a real celery beat (embedded, on a thread,
every TRAINOPS_MONITOR_INTERVAL = 1 s), the local provider running the real agent on the tiny
model, and the databases and file store of tests/runner.

Beat is a per-test fixture (`beat`): the deadline test needs the monitor stopped, and a beat
left ticking between tests would tick against the next test's database.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import celery_worker_running, redis_url, worker_config

BROKER = f"{redis_url()}/7"
QUEUE = "trainops-guard-tests"
TICK_S = 1.0


@pytest.fixture(scope="package")
def guard_env():
    """Process environment for this package (the worker thread reads it too), restored after."""
    env = {"TRAINOPS_BROKER_URL": BROKER, "TRAINOPS_MONITOR_INTERVAL": str(TICK_S),
           "TRAINOPS_PROGRESS_EVERY": "2"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


CELERY_CONFIG = worker_config(BROKER, QUEUE, TICK_S)


@pytest.fixture(scope="package")
def guard_worker(guard_env):
    """A real worker (threads) on Redis db 7, its own queue, for this package."""
    import redis

    redis.Redis.from_url(BROKER).delete(QUEUE)
    with celery_worker_running(CELERY_CONFIG, ["workers.tasks"]) as (app, running):
        yield app, running
    redis.Redis.from_url(BROKER).delete(QUEUE)


@pytest.fixture
def worker(no_worker, guard_worker, guard_env, monkeypatch):
    """The package's worker with an empty queue; in-flight tasks done before the next test.
    What the runner enqueues (jobs.decide, jobs.cancel: through workers.celery_app.app) goes to
    this worker too, never to another area's broker."""
    import redis
    from celery.worker import state

    app, _running = guard_worker
    monkeypatch.setattr("workers.celery_app.app", app)
    redis.Redis.from_url(BROKER).delete(QUEUE, "celery")
    yield app
    # jobs.decide/cancel also publish through workers.celery_app (its default queue): drop those.
    redis.Redis.from_url(BROKER).delete(QUEUE, "celery")
    deadline = time.monotonic() + 60
    while state.active_requests and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """By default the broker is up and nobody consumes: what the runner enqueues (approvals,
    cancels) waits in a queue of this package's own, dropped after the test, and never reaches
    another area's worker. Tests that take `worker` get it delivered to the worker instead."""
    import redis
    from celery import Celery

    app = Celery("guard-nobody", broker=BROKER)
    app.conf.task_default_queue = "trainops-guard-nobody"
    monkeypatch.setattr("workers.celery_app.app", app)
    yield app
    redis.Redis.from_url(BROKER).delete("trainops-guard-nobody")


@pytest.fixture
def beat(worker, tmp_path):
    """celery beat, embedded on a thread, sending trainops.jobs.monitor_tick every TICK_S.
    Yields the worker's app (send_task reaches the worker)."""
    from celery.beat import EmbeddedService

    service = EmbeddedService(worker, thread=True, max_interval=TICK_S / 2,
                              schedule_filename=str(tmp_path / "beat-schedule"))
    service.start()
    yield worker
    service.stop()
    service.join(10)


# The runner's database, store and AWS fixtures (SQLite always, PostgreSQL when
# TRAINOPS_TEST_DATABASE_URL is set), shared rather than copied.
from tests.runner.conftest import aws_env, db, db_url, runner_env  # noqa: E402, F401
