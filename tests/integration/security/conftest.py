"""The security area (issue #14): the bot's real HTTP endpoint with signed requests, a fake Slack
Web API, a real Celery worker on the real Redis (database 8) running both the Slack tasks and
the runner's tasks, an embedded celery beat ticking the real monitor, the local provider running
the real agent, and a team config that opened `command=` (so what an approver lets run can be
attacked). Secrets are random per run so every output can be searched for them. Every test that
touches the database runs on SQLite and on PostgreSQL (when TRAINOPS_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import os
import secrets

import pytest

from tests.support.fake_slack import fake_slack_fixture  # noqa: F401 (the fake_slack fixture)
from tests.support.services import (
    area_broker,
    area_queue,
    celery_worker_running,
    embedded_beat,
    environment_set,
    postgres_schema,
    route_enqueues,
    worker_config,
)
from tests.support.slack_harness import APPROVER, BOT_TOKEN, SIGNING_SECRET, serve
from tests.support.waiting import wait_for

BROKER = area_broker("security")
QUEUE = area_queue("security")
TICK_S = 1.0
AWS_SECRET = "wJalr" + secrets.token_urlsafe(30)
AWS_KEY_ID = "AKIA" + secrets.token_hex(8).upper()
SELF_APPROVE_LIMIT = 100
TEAM_TOML = """
[security]
allow_commands = true
self_approve_limit_usd = {limit}

[data]
local_roots = ["{data_root}"]
s3_prefixes = ["s3://team-data/train"]
"""


@pytest.fixture(scope="package")
def sec_env(fake_slack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("security")
    (tmp / "data").mkdir()
    (tmp / "trainops.toml").write_text(TEAM_TOML.format(limit=SELF_APPROVE_LIMIT,
                                                        data_root=tmp / "data"))
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url, "TRAINOPS_BROKER_URL": BROKER,
        "TRAINOPS_QUEUE": QUEUE,
        "TRAINOPS_PROVIDER": "local", "TRAINOPS_STORE": f"file://{tmp}/store",
        "TRAINOPS_CONFIG": str(tmp / "trainops.toml"), "TRAINOPS_APPROVERS": APPROVER,
        "TRAINOPS_DATABASE_URL": f"sqlite:///{tmp}/trainops.db",
        "TRAINOPS_MONITOR_INTERVAL": str(TICK_S), "TRAINOPS_PROGRESS_EVERY": "2",
        # The worker's own AWS credentials: what an attacker's command would love to print.
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    }
    with environment_set(env, drop=("SLACK_APP_TOKEN", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")):
        yield {**env, "tmp": tmp}


def _databases() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get("TRAINOPS_TEST_DATABASE_URL") else ["sqlite"]


@pytest.fixture(scope="package", params=_databases())
def database(request, sec_env):
    """Every test that takes it runs on both databases (PostgreSQL in a schema of this run's
    own). The bot, the worker's tasks and the monitor all build theirs from
    TRAINOPS_DATABASE_URL, so the URL is switched for the run."""
    from schemas.db import database as dbmod
    from schemas.settings import get_settings

    with postgres_schema("security") as schema_url:
        url = schema_url if request.param == "postgresql" else sec_env["TRAINOPS_DATABASE_URL"]
        os.environ["TRAINOPS_DATABASE_URL"] = url
        get_settings.cache_clear()
        database = dbmod.get_database(get_settings())
        try:
            yield database
        finally:
            os.environ["TRAINOPS_DATABASE_URL"] = sec_env["TRAINOPS_DATABASE_URL"]
            get_settings.cache_clear()
            if request.param == "postgresql":  # before the schema is dropped
                dbmod._cache.pop(url, None)
                database.dispose()


@pytest.fixture(scope="package")
def sec_worker(sec_env):
    import redis

    redis.Redis.from_url(BROKER).delete(QUEUE)
    config = worker_config(BROKER, QUEUE, TICK_S)
    with celery_worker_running(config, ["bot.slack.tasks", "workers.queue.tasks"]) as (app, _r):
        yield app
    redis.Redis.from_url(BROKER).delete(QUEUE)


@pytest.fixture
def worker(sec_worker, monkeypatch):
    """The package's worker; what the runner enqueues (approvals, cancels) reaches it too."""
    import redis
    from celery.worker import state

    route_enqueues(sec_worker, monkeypatch)
    redis.Redis.from_url(BROKER).delete(QUEUE)
    yield sec_worker
    redis.Redis.from_url(BROKER).delete(QUEUE)
    wait_for(lambda: not state.active_requests, what="the worker's tasks in flight to end")


@pytest.fixture
def beat(worker, tmp_path):
    """celery beat on a thread, sending the real monitor tick every TICK_S."""
    with embedded_beat(worker, tmp_path, TICK_S):
        yield worker


def make_bot(worker, fake_slack, database, config=None):
    from bot.slack.app import build_app
    from schemas.config import cached_config
    from schemas.settings import get_settings

    settings = get_settings()
    app = build_app(settings, config or cached_config(settings.config_path), database,
                    celery=worker)
    fake_slack.reset()
    return serve(app, fake_slack, database)


@pytest.fixture
def bot(worker, fake_slack, database):
    handle, server = make_bot(worker, fake_slack, database)
    yield handle
    server.shutdown()
    server.server_close()
