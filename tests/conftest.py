"""Fixtures every area shares: fake AWS credentials, moto's server on loopback, Redis, and the
two databases. Each area's own fixtures live in its folder's conftest.py."""

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


def database_urls(tmp_dir) -> list[str]:
    """SQLite always; PostgreSQL when TRAINOPS_TEST_DATABASE_URL is set (.ci/test sets it)."""
    urls = [f"sqlite:///{tmp_dir}/trainops.db"]
    if os.environ.get("TRAINOPS_TEST_DATABASE_URL"):
        urls.append(os.environ["TRAINOPS_TEST_DATABASE_URL"])
    return urls


@contextmanager
def celery_worker_running(config: dict, includes: list[str], **worker_params):
    """A real Celery worker on a thread, for one area of the suite (a package-scoped fixture
    wraps this). celery.contrib.pytest's session worker lives until the end of the run; two
    areas with their own broker settings would then share one process with two live workers,
    each taking the other's messages. This is the same machinery (TestApp + start_worker), with
    a lifetime the area chooses."""
    from celery.contrib.testing import worker
    from celery.contrib.testing.app import TestApp, setup_default_app

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
    message at a time, and (with `tick_s`) beat sending the real monitor task on that cadence."""
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
            "options": {"expires": tick_s}}}
    return config
