"""Fixtures for the Slack bot, in the style of bolt-python's own tests: a fake Slack Web API on
port 0 that records calls, requests signed like Slack's sent to the real HTTP endpoint of
`trainops serve`, and a real Celery worker (celery.contrib.pytest) on the real Redis."""

from __future__ import annotations

import os
import threading

import pytest

from tests.conftest import celery_worker_running
from tests.slack.fake_slack import FakeSlack
from tests.slack.slack_harness import APPROVER, BOT_TOKEN, REDIS_DB, SIGNING_SECRET, Bot, redis_url


@pytest.fixture(scope="package")
def fake_slack():
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def slack_env(fake_slack, tmp_path_factory):
    """The process environment trainops reads (the worker thread reads it too)."""
    from schemas.settings import get_settings

    tmp = tmp_path_factory.mktemp("slack")
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "TRAINOPS_BROKER_URL": f"{redis_url()}/{REDIS_DB}",
        "TRAINOPS_PROVIDER": "local",
        "TRAINOPS_STORE": f"file://{tmp}/store",
        "TRAINOPS_CONFIG": str(tmp / "absent.toml"),  # embedded defaults
        "TRAINOPS_APPROVERS": APPROVER,
        "TRAINOPS_DATABASE_URL": f"sqlite:///{tmp}/trainops.db",
    }
    saved = {k: os.environ.get(k) for k in [*env, "SLACK_APP_TOKEN"]}
    os.environ.update(env)
    os.environ.pop("SLACK_APP_TOKEN", None)
    get_settings.cache_clear()
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="package")
def celery_config(slack_env):
    """The real Redis. The test worker listens on its own queue only: the provision tasks the
    runner enqueues on approval (through workers.celery_app, default queue) are left alone, so
    no test launches a machine, and they are dropped when these tests end."""
    import redis

    url = slack_env["TRAINOPS_BROKER_URL"]
    yield {"broker_url": url, "result_backend": url, "task_serializer": "json",
           "accept_content": ["json"], "broker_connection_retry_on_startup": True,
           "task_default_queue": "trainops-slack-tests"}
    redis.Redis.from_url(url).delete("celery", "trainops-slack-tests")


@pytest.fixture(scope="package")
def slack_worker(celery_config):
    """A real worker on the real Redis for this package's tests, stopped when they end."""
    with celery_worker_running(celery_config, ["workers.slack_tasks"]) as (app, _running):
        yield app


def _db_params():
    params = ["sqlite"]
    if os.environ.get("TRAINOPS_TEST_DATABASE_URL"):
        params.append("postgres")
    return params


@pytest.fixture(scope="package", params=_db_params())
def database(request, slack_env):
    """SQLite always, PostgreSQL when TRAINOPS_TEST_DATABASE_URL is set; the worker thread
    finds the same one through TRAINOPS_DATABASE_URL."""
    from schemas.db import get_database
    from schemas.settings import get_settings

    url = slack_env["TRAINOPS_DATABASE_URL"]
    if request.param == "postgres":
        url = os.environ["TRAINOPS_TEST_DATABASE_URL"]
    os.environ["TRAINOPS_DATABASE_URL"] = url
    get_settings.cache_clear()
    return get_database(get_settings())


def serve(app, fake_slack, db) -> tuple[Bot, object]:
    from bot.serve import EVENTS_PATH, SlackHTTPServer

    server = SlackHTTPServer(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Bot(f"http://127.0.0.1:{server.port}{EVENTS_PATH}", fake_slack, app, db), server


@pytest.fixture
def bot(slack_env, fake_slack, database, slack_worker):
    from bot.app import build_app
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
