"""Fixtures every area shares: fake AWS credentials, moto's server on loopback, Redis, and the
two databases. Each area's own fixtures live in its folder's conftest.py."""

from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture(scope="session")
def moto_server():
    """moto's server on a free loopback port, with every boto3 client pointed at it through
    AWS_ENDPOINT_URL (so code in other processes, such as a Celery worker or the agent, reaches it
    too). Yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_AWS_ENV = (
    "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
)


@pytest.fixture
def moto_reset(moto_server):
    """A clean moto state for one test (moto's server keeps state across tests otherwise)."""
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    ).read()
    yield moto_server


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
