"""Fixtures for the Slack bot, in the style of bolt-python's own tests: a fake Slack Web API on
port 0 that records calls, requests signed like Slack's sent to the real HTTP endpoint of
`trainops serve`, and a real Celery worker (celery.contrib.pytest) on the real Redis."""

from __future__ import annotations

import os

import pytest

from tests.support.fake_slack import fake_slack_fixture  # noqa: F401 (the fake_slack fixture)
from tests.support.services import (
    area_queue,
    celery_worker_running,
    environment_set,
    postgres_schema,
    route_enqueues,
)
from tests.support.slack_harness import (
    APPROVER,
    BOT_TOKEN,
    REDIS_DB,
    SIGNING_SECRET,
    redis_url,
    serve,  # noqa: F401
)


@pytest.fixture(scope="package")
def slack_env(fake_slack, tmp_path_factory):
    """The process environment trainops reads (the worker thread reads it too)."""
    tmp = tmp_path_factory.mktemp("slack")
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "TRAINOPS_BROKER_URL": f"{redis_url()}/{REDIS_DB}",
        "TRAINOPS_QUEUE": area_queue("slack", "runner"),
        "TRAINOPS_PROVIDER": "local",
        "TRAINOPS_LOCAL_PRICE_PER_HOUR": "1",  # SMALL fits its budget on this machine, OVER not
        "TRAINOPS_STORE": f"file://{tmp}/store",
        "TRAINOPS_CONFIG": str(tmp / "absent.toml"),  # embedded defaults
        "TRAINOPS_APPROVERS": APPROVER,
        "TRAINOPS_DATABASE_URL": f"sqlite:///{tmp}/trainops.db",
    }
    _measured_machine(f"file://{tmp}/store")  # quotes are for this machine (issue 13)
    with environment_set(env, drop=("SLACK_APP_TOKEN",)):
        yield env


@pytest.fixture(scope="package")
def celery_config(slack_env):
    """The real Redis. The test worker listens on its own queue only: the provision tasks the
    runner enqueues on approval (through workers.queue.app, to a queue of this run nobody
    reads) are left alone, so no test launches a machine, and they are dropped when these tests
    end."""
    import redis

    url = slack_env["TRAINOPS_BROKER_URL"]
    yield {"broker_url": url, "result_backend": url, "task_serializer": "json",
           "accept_content": ["json"], "broker_connection_retry_on_startup": True,
           "task_default_queue": area_queue("slack")}
    redis.Redis.from_url(url).delete(slack_env["TRAINOPS_QUEUE"], area_queue("slack"))


@pytest.fixture(scope="package")
def slack_worker(celery_config, slack_env):
    """A real worker on the real Redis for this package's tests, stopped when they end. What
    the runner enqueues goes to this run's unread queue, whichever area built the process's app."""
    from celery import Celery

    nobody = Celery("slack-runner-nobody", broker=slack_env["TRAINOPS_BROKER_URL"])
    nobody.conf.task_default_queue = slack_env["TRAINOPS_QUEUE"]
    with celery_worker_running(celery_config, ["bot.slack.tasks"]) as (app, _running):
        with pytest.MonkeyPatch.context() as mp:
            route_enqueues(nobody, mp)
            yield app


def _db_params():
    params = ["sqlite"]
    if os.environ.get("TRAINOPS_TEST_DATABASE_URL"):
        params.append("postgres")
    return params


@pytest.fixture(scope="package", params=_db_params())
def database(request, slack_env):
    """SQLite always, PostgreSQL (a schema of this run's own) when TRAINOPS_TEST_DATABASE_URL is
    set; the worker thread finds the same one through TRAINOPS_DATABASE_URL."""
    from schemas.db.database import get_database
    from schemas.settings import get_settings

    with postgres_schema("slack") as schema_url:
        url = schema_url if request.param == "postgres" else slack_env["TRAINOPS_DATABASE_URL"]
        os.environ["TRAINOPS_DATABASE_URL"] = url
        get_settings.cache_clear()
        database = get_database(get_settings())
        yield database
        database.dispose()  # before its schema is dropped
        os.environ["TRAINOPS_DATABASE_URL"] = slack_env["TRAINOPS_DATABASE_URL"]
        get_settings.cache_clear()


@pytest.fixture
def bot(slack_env, fake_slack, database, slack_worker):
    from bot.slack.app import build_app
    from schemas.config import cached_config
    from schemas.settings import get_settings

    settings = get_settings()
    app = build_app(settings, cached_config(settings.config_path), database,
                    celery=slack_worker)
    fake_slack.reset()
    handle, server = serve(app, fake_slack, database)
    yield handle
    server.shutdown()
    server.server_close()


def _measured_machine(store_uri: str) -> None:
    """A calibrated local machine in the store, so the worker's quotes need no calibration run
    (tests/integration/workers/local runs the real one)."""
    from schemas.store import open_store
    from workers.quoting.local_option import LocalProfile, Measurement, write_profile

    write_profile(open_store(store_uri), LocalProfile(gpus=0, gpu="cpu", detected="test", measurements=[
        Measurement(source="calibration", model="tiny", method="lora", precision="fp32",
                    seq_len=256, batch_size=8, flops_per_token=2.4e6, step_s=0.1, setup_s=10.0,
                    finish_s=3.0)]))
