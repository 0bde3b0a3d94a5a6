"""The local provider's quotes end to end: the real calibration run, a real Celery worker on the
real Redis (the local area's database and this run's own queue) that provisions the job, the real agent on the tiny
model, and the real monitor tick metering and reporting it."""

from __future__ import annotations

import pytest

from tests.support.runner import db, db_url, runner_env  # noqa: F401
from tests.support.services import (
    area_broker,
    area_queue,
    celery_worker_running,
    route_enqueues,
    worker_config,
)

BROKER = area_broker("local")
QUEUE = area_queue("local")  # this run's own: a second run of the suite never takes its tasks


@pytest.fixture(scope="package")
def local_worker():
    import redis

    redis.Redis.from_url(BROKER).delete(QUEUE)
    with celery_worker_running(worker_config(BROKER, QUEUE), ["workers.queue.tasks"]) as (app, _):
        yield app
    redis.Redis.from_url(BROKER).delete(QUEUE)


@pytest.fixture
def worker(local_worker, monkeypatch):
    """What jobs.decide enqueues goes to this package's worker, never another area's broker."""
    monkeypatch.setenv("TRAINOPS_BROKER_URL", BROKER)
    route_enqueues(local_worker, monkeypatch)
    yield local_worker
