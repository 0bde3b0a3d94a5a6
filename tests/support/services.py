"""What every area of the suite shares: fake AWS credentials, moto's server on loopback, Redis,
the two databases and a real Celery worker on a thread. Fixtures are defined here and imported by
the conftest.py of the areas that use them; nothing starts until a test asks for it."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest


@pytest.fixture(scope="session")
def moto_server():
    """moto's server on a free loopback port for the whole session. Yields its URL. It sets no
    environment by itself: tests that talk to it take `moto_reset` (or `aws_env`), which points
    boto3 at it for that test only, so a test that expects no AWS (catalog prices, say) never
    inherits another test's endpoint."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_endpoint(moto_server, monkeypatch):
    """Fake credentials and AWS_ENDPOINT_URL pointing every boto3 client at moto's server, for
    this test (code in other processes, such as the agent, or the worker thread, reads them
    too)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return moto_server


@pytest.fixture
def moto_reset(aws_endpoint):
    """A clean moto state for one test (moto's server keeps state across tests otherwise)."""
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{aws_endpoint}/moto-api/reset", method="POST")
    ).read()
    yield aws_endpoint


@pytest.fixture
def s3_bucket(moto_reset):
    """A fresh bucket on moto's server; yields its name."""
    import boto3

    name = f"trainops-test-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=name)
    return name


def redis_url() -> str:
    return os.environ.get("TRAINOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379")


# Each area of the suite that runs a Celery worker has its own Redis database (so one area's
# keys never meet another's) and, per run, its own queue names: two runs of the suite on one
# machine share the databases but never a queue, so neither takes the other's tasks. A new area
# takes the next free number here.
REDIS_DBS = {"local": 3, "runner": 5, "slack": 6, "guard": 7, "security": 8, "e2e": 9}
RUN_ID = os.environ.get("TRAINOPS_TEST_RUN_ID") or uuid.uuid4().hex[:8]


def area_broker(area: str) -> str:
    """The Redis URL of `area`'s own database."""
    return f"{redis_url()}/{REDIS_DBS[area]}"


def area_queue(area: str, name: str = "") -> str:
    """A queue of `area` for this run only: trainops-tests-<area>[-<name>]-<run id>."""
    return f"trainops-tests-{area}{'-' + name if name else ''}-{RUN_ID}"


def route_enqueues(app, monkeypatch) -> None:
    """Whatever the code under test hands to the workers (workers.queue.enqueue, and
    `workers.queue.app.app`, which is `get_app()`) goes through `app` for this test: the area's
    broker and queue, whichever area built the process's app first. Only `_app` is patched: a
    real `app` attribute left behind by an undo would shadow `get_app()` for later tests."""
    import workers.queue.app as queue_app

    monkeypatch.setattr(queue_app, "_app", app)


@contextmanager
def postgres_schema(area: str):
    """A schema of its own in the PostgreSQL test database (TRAINOPS_TEST_DATABASE_URL), dropped
    afterwards; yields a URL with that schema first on the search path, so every table, alembic's
    included, lands there. Two runs of the suite on one machine, and two areas of one run, never
    see each other's rows. None when no PostgreSQL is configured."""
    import sqlalchemy as sa

    base = os.environ.get("TRAINOPS_TEST_DATABASE_URL")
    if not base:
        yield None
        return
    schema = f"{area}_{uuid.uuid4().hex[:12]}"

    def run(sql: str) -> None:
        engine = sa.create_engine(base)
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
        engine.dispose()

    run(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        run(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextmanager
def celery_worker_running(config: dict, includes: list[str], **worker_params):
    """A real Celery worker on a thread, for one area of the suite (a package-scoped fixture
    wraps this). celery.contrib.pytest's session worker lives until the end of the run; two
    areas with their own broker settings would then share one process with two live workers,
    each taking the other's messages. This is the same machinery (TestApp + start_worker), with
    a lifetime the area chooses."""
    import importlib

    from celery.contrib.testing import worker
    from celery.contrib.testing.app import TestApp, setup_default_app

    # Imported before setup_default_app, never first inside it: it restores Celery's list of
    # shared-task finalizers when it ends, so tasks first registered inside would be missing
    # from every app made after this area's (its worker would drop them as unregistered).
    for module in includes:
        importlib.import_module(module)
    app = TestApp(set_as_current=False, enable_logging=False, config=config)
    with setup_default_app(app, use_trap=False):
        app.set_default()
        app.set_current()
        for module in includes:
            app.loader.import_task_module(module)
        params = {"pool": "threads", "concurrency": 4, "perform_ping_check": False}
        params.update(worker_params)
        with worker.start_worker(app, **params) as running:
            yield app, running


def worker_config(broker: str, queue: str, tick_s: float | None = None) -> dict:
    """Celery settings for one area's test worker: its own Redis DB and queue, JSON only, one
    message at a time, and (with `tick_s`) beat sending the real monitor task on that cadence,
    to that queue."""
    config = {
        "broker_url": broker,
        "broker_transport_options": {"visibility_timeout": 3600},
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        "task_default_queue": queue,
    }
    if tick_s is not None:
        config["beat_schedule"] = {"monitor-tick": {
            "task": "trainops.jobs.monitor_tick", "schedule": tick_s,
            "options": {"expires": tick_s, "queue": queue}}}
    return config


@contextmanager
def environment_set(env: dict[str, str], drop: tuple[str, ...] = ()):
    """The process environment with `env` set and `drop` removed, restored afterwards (a worker
    thread reads the same os.environ, so per-test monkeypatching cannot reach it). The cached
    settings and team config are rebuilt on the way in and out."""
    from schemas.config import cached_config
    from schemas.settings import get_settings

    saved = {k: os.environ.get(k) for k in [*env, *drop]}
    os.environ.update(env)
    for key in drop:
        os.environ.pop(key, None)
    get_settings.cache_clear()
    cached_config.cache_clear()
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        cached_config.cache_clear()


@contextmanager
def embedded_beat(app, schedule_dir, tick_s: float):
    """celery beat on a thread of this process, sending the app's schedule (the monitor tick
    every `tick_s`); stopped, and joined, on the way out."""
    from celery.beat import EmbeddedService

    service = EmbeddedService(app, thread=True, max_interval=tick_s / 2,
                              schedule_filename=str(schedule_dir / "beat-schedule"))
    service.start()
    try:
        yield app
    finally:
        service.stop()
        service.join(10)
