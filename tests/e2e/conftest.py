"""Fixtures for the one end-to-end test: the whole flow the way Slack and AWS would drive it.

Real parts: the bot's HTTP endpoint (bot.serve's server on port 0) signed like Slack, a stand-in
Slack Web API on loopback recording every call (tests/slack/fake_slack.py), the real Redis
(database 9) with a real Celery worker (threads) and a real embedded beat ticking the real
monitor task every TICK_S, SQLite, moto's server for EC2 and S3 (the aws provider, the store on
s3://), and the training agent as a local process standing in for each launched instance.

The environment is package-scoped and restored afterwards: the worker thread reads it too.
"""

from __future__ import annotations

import os
import time

import pytest

# Imported here, at collection, on purpose: shared_task registers each task through a finalizer
# that celery_worker_running's setup_default_app drops when it ends. Imported inside it for the
# first time, the tasks would be missing from every Celery app made after this package.
import workers.slack_tasks  # noqa: F401, E402
import workers.tasks  # noqa: F401, E402
from tests.conftest import celery_worker_running, redis_url, worker_config
from tests.slack.fake_slack import FakeSlack

REDIS_DB = 9
BROKER = f"{redis_url()}/{REDIS_DB}"
QUEUE = "trainops-e2e-tests"
TICK_S = 1.0
BUCKET = "trainops-e2e"
CHANNEL, REQUESTER, APPROVER = "C0TEST", "UREQUESTER", "UAPPROVER"


@pytest.fixture(scope="package")
def fake_slack():
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def e2e_env(fake_slack, moto_server, tmp_path_factory):
    from schemas.settings import get_settings
    from tests.slack.slack_harness import BOT_TOKEN, SIGNING_SECRET

    tmp = tmp_path_factory.mktemp("e2e")
    (tmp / "tmp").mkdir()
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "TRAINOPS_BROKER_URL": BROKER,
        "TRAINOPS_PROVIDER": "aws",
        "TRAINOPS_STORE": f"s3://{BUCKET}/store",
        "TRAINOPS_CONFIG": str(tmp / "absent.toml"),  # embedded defaults
        "TRAINOPS_APPROVERS": APPROVER,
        "TRAINOPS_DATABASE_URL": f"sqlite:///{tmp}/trainops.db",
        "TRAINOPS_MONITOR_INTERVAL": str(TICK_S),
        "TRAINOPS_PROGRESS_EVERY": "2",
        "AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TRAINOPS_CACHE_DIR": str(tmp / "cache"),
    }
    names = [*env, "SLACK_APP_TOKEN", "TRAINOPS_AWS_AMI"]
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(env)
    os.environ.pop("SLACK_APP_TOKEN", None)
    get_settings.cache_clear()
    yield {**env, "tmp": tmp}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


CELERY_CONFIG = worker_config(BROKER, QUEUE, TICK_S)


@pytest.fixture(scope="package")
def e2e_worker(e2e_env):
    """A real worker on Redis db 9 (its own queue) with the runner's and the bot's tasks. The
    jobs service enqueues through workers.celery_app.app; for this package that name is this
    app, so an approval's provision task reaches this worker and no other."""
    import redis

    import workers.celery_app

    redis.Redis.from_url(BROKER).delete(QUEUE)
    with celery_worker_running(CELERY_CONFIG, ["workers.tasks", "workers.slack_tasks"]) as (
            app, _running):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(workers.celery_app, "app", app)
            yield app
    redis.Redis.from_url(BROKER).delete(QUEUE)


@pytest.fixture
def beat(e2e_worker, tmp_path):
    """celery beat on a thread, sending the monitor tick every TICK_S."""
    from celery.beat import EmbeddedService

    service = EmbeddedService(e2e_worker, thread=True, max_interval=TICK_S / 2,
                              schedule_filename=str(tmp_path / "beat-schedule"))
    service.start()
    yield e2e_worker
    service.stop()
    service.join(10)
    deadline = time.monotonic() + 30  # let an in-flight tick finish before the env goes
    from celery.worker import state

    while state.active_requests and time.monotonic() < deadline:
        time.sleep(0.1)
