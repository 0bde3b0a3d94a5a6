"""Fixtures for the job runner: both databases, a file store, and a real Celery worker on the
real Redis (the runner's own database and a queue of this run's own: tests/support/services.py)."""

from __future__ import annotations

import os

import pytest

from tests.support.services import (
    area_broker,
    area_queue,
    celery_worker_running,
    postgres_schema,
    route_enqueues,
)
from tests.support.waiting import wait_for  # noqa: F401 - the runner tests' import path

BROKER = area_broker("runner")
QUEUE = area_queue("runner")
# Before anything builds Settings: the app in workers.queue.app and every task read these.
os.environ["TRAINOPS_BROKER_URL"] = BROKER
os.environ["TRAINOPS_QUEUE"] = QUEUE


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/trainops.db"
        return
    with postgres_schema("runner") as url:
        if url is None:
            pytest.skip("PostgreSQL: set TRAINOPS_TEST_DATABASE_URL")
        yield url


@pytest.fixture
def db(db_url):
    from schemas.db import database as dbmod

    dbmod._cache.clear()
    dbmod.upgrade(db_url)
    database = dbmod.Database(db_url)
    yield database
    database.dispose()
    for cached in dbmod._cache.values():
        cached.dispose()
    dbmod._cache.clear()


@pytest.fixture
def runner_env(db, tmp_path, monkeypatch):
    """Settings for code that builds its own world (tasks, CLI): this test's database and
    store, the local provider unless the test says otherwise."""
    from schemas.settings import get_settings

    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("TRAINOPS_DATABASE_URL", db.url)
    monkeypatch.setenv("TRAINOPS_STORE", f"file://{store}")
    monkeypatch.setenv("TRAINOPS_PROVIDER", "local")
    monkeypatch.setenv("TRAINOPS_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    get_settings.cache_clear()
    yield get_settings
    get_settings.cache_clear()


@pytest.fixture
def aws_env(runner_env, moto_reset, monkeypatch):
    """The aws provider against moto's server, with an AMI moto knows."""
    import boto3

    from schemas.settings import get_settings

    ec2 = boto3.client("ec2", region_name="us-east-1")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="trainops-runner")
    monkeypatch.setenv("TRAINOPS_PROVIDER", "aws")
    monkeypatch.setenv("TRAINOPS_AWS_AMI", ami)
    monkeypatch.setenv("TRAINOPS_STORE", "s3://trainops-runner/store")
    get_settings.cache_clear()
    return ec2


CELERY_CONFIG = {
    "broker_url": BROKER,
    "broker_transport_options": {"visibility_timeout": 3600},
    "task_serializer": "json",
    "accept_content": ["json"],
    "worker_prefetch_multiplier": 1,
    "task_default_queue": QUEUE,
}


@pytest.fixture(scope="package")
def runner_worker():
    """A real worker on the runner's Redis database and this run's queue, for this package's
    tests, stopped when they end. `.app` is its Celery app."""
    with celery_worker_running(CELERY_CONFIG, ["workers.queue.tasks"]) as (app, running):
        yield running
    import redis

    redis.Redis.from_url(BROKER).delete(QUEUE)


@pytest.fixture
def worker(runner_worker, monkeypatch):
    """The package's real worker, with the queue emptied of earlier tests' messages; what the
    code under test enqueues reaches it (and no other run's worker)."""
    import redis
    from celery.worker import state

    queue = redis.Redis.from_url(BROKER)
    queue.delete(QUEUE)
    route_enqueues(runner_worker.app, monkeypatch)
    yield runner_worker
    # Leave nothing in flight for the next test: its database is not this one.
    queue.delete(QUEUE)
    wait_for(lambda: not state.active_requests, what="the worker's tasks in flight to end")
