"""Fixtures for the job runner: both databases, a file store, and a real Celery worker on the
real Redis (database 5, so other areas' tests do not collide)."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.conftest import celery_worker_running, redis_url

BROKER = f"{redis_url()}/5"
# Before anything builds Settings: the app in workers.celery_app and every task read these.
os.environ["TRAINOPS_BROKER_URL"] = BROKER


def _schema_url(base: str, schema: str) -> str:
    """The same PostgreSQL database, with `schema` first on the search path: every table,
    alembic's included, lands there, so tests never touch what other areas' tests hold."""
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def _postgres(base: str, sql: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/trainops.db"
        return
    base = os.environ.get("TRAINOPS_TEST_DATABASE_URL")
    if not base:
        pytest.skip("PostgreSQL: set TRAINOPS_TEST_DATABASE_URL")
    schema = f"runner_{uuid.uuid4().hex[:12]}"
    _postgres(base, f"CREATE SCHEMA {schema}")
    try:
        yield _schema_url(base, schema)
    finally:
        _postgres(base, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def db(db_url):
    from schemas import db as dbmod

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
}


@pytest.fixture(scope="package")
def runner_worker():
    """A real worker on the real Redis (db 5) for this package's tests, stopped when they end."""
    with celery_worker_running(CELERY_CONFIG, ["workers.tasks"]) as (_app, running):
        yield running


@pytest.fixture
def worker(runner_worker):
    """The session's real worker, with the queue emptied of earlier tests' messages."""
    import redis
    from celery.worker import state

    queue = redis.Redis.from_url(BROKER)
    queue.delete("celery")
    yield runner_worker
    # Leave nothing in flight for the next test: its database is not this one.
    queue.delete("celery")
    wait_for(lambda: not state.active_requests, timeout=60)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
