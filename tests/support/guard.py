"""Fixtures for the spend guard's end-to-end tests: a real Celery worker on the real Redis
(the guard's own database, this run's own queues: tests/support/services.py) with the real monitor task, ticked by a real celery beat (embedded, on a thread,
every TRAINOPS_MONITOR_INTERVAL = 1 s), the local provider running the real agent on the tiny
model, and the databases and file store of tests/runner.

Beat is a per-test fixture (`beat`): the deadline test needs the monitor stopped, and a beat
left ticking between tests would tick against the next test's database.
"""

from __future__ import annotations

import pytest

from tests.support.services import (
    area_broker,
    area_queue,
    celery_worker_running,
    embedded_beat,
    environment_set,
    route_enqueues,
    worker_config,
)
from tests.support.waiting import wait_for

BROKER = area_broker("guard")
QUEUE = area_queue("guard")
NOBODY = area_queue("guard", "nobody")
TICK_S = 1.0


@pytest.fixture(scope="package")
def guard_env():
    """Process environment for this package (the worker thread reads it too), restored after."""
    env = {"TRAINOPS_BROKER_URL": BROKER, "TRAINOPS_QUEUE": QUEUE,
           "TRAINOPS_MONITOR_INTERVAL": str(TICK_S), "TRAINOPS_PROGRESS_EVERY": "2"}
    with environment_set(env):
        yield env


CELERY_CONFIG = worker_config(BROKER, QUEUE, TICK_S)


@pytest.fixture(scope="package")
def guard_worker(guard_env):
    """A real worker (threads) on the guard's Redis database and this run's queue."""
    import redis

    redis.Redis.from_url(BROKER).delete(QUEUE)
    with celery_worker_running(CELERY_CONFIG, ["workers.queue.tasks"]) as (app, running):
        yield app, running
    redis.Redis.from_url(BROKER).delete(QUEUE)


@pytest.fixture
def worker(no_worker, guard_worker, guard_env, monkeypatch):
    """The package's worker with an empty queue; in-flight tasks done before the next test.
    What the code under test enqueues (jobs.decide, jobs.cancel, the monitor's relaunches) goes
    to this worker too, never to another area's broker or another run's queue."""
    import redis
    from celery.worker import state

    app, _running = guard_worker
    route_enqueues(app, monkeypatch)
    redis.Redis.from_url(BROKER).delete(QUEUE)
    yield app
    redis.Redis.from_url(BROKER).delete(QUEUE)
    wait_for(lambda: not state.active_requests, what="the worker's tasks in flight to end")


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """By default the broker is up and nobody consumes: what the runner enqueues (approvals,
    cancels) waits in a queue of this package's own, dropped after the test, and never reaches
    another area's worker. Tests that take `worker` get it delivered to the worker instead."""
    import redis
    from celery import Celery

    app = Celery("guard-nobody", broker=BROKER)
    app.conf.task_default_queue = NOBODY
    route_enqueues(app, monkeypatch)
    yield app
    redis.Redis.from_url(BROKER).delete(NOBODY)


@pytest.fixture
def beat(worker, tmp_path):
    """celery beat, embedded on a thread, sending trainops.jobs.monitor_tick every TICK_S.
    Yields the worker's app (send_task reaches the worker)."""
    with embedded_beat(worker, tmp_path, TICK_S):
        yield worker


# The runner's database, store and AWS fixtures (SQLite always, PostgreSQL when
# TRAINOPS_TEST_DATABASE_URL is set), shared rather than copied.
from tests.support.runner import aws_env, db, db_url, runner_env  # noqa: E402, F401
