"""Fixtures for the one end-to-end test: the whole flow the way Slack and AWS would drive it.

Real parts: the bot's HTTP endpoint (bot.slack.serve's server on port 0) signed like Slack, a stand-in
Slack Web API on loopback recording every call (tests/slack/fake_slack.py), the real Redis
(the e2e area's own database, this run's own queue: tests/support/services.py) with a real Celery worker (threads) and a real embedded beat ticking the real
monitor task every TICK_S, SQLite, moto's server for EC2 and S3 (the aws provider, the store on
s3://), and the training agent as a local process standing in for each launched instance.

The environment is package-scoped and restored afterwards: the worker thread reads it too.
"""

from __future__ import annotations

import pytest

# Imported here, at collection, on purpose: shared_task registers each task through a finalizer
# that celery_worker_running's setup_default_app drops when it ends. Imported inside it for the
# first time, the tasks would be missing from every Celery app made after this package.
import bot.slack.tasks  # noqa: F401, E402
import workers.queue.tasks  # noqa: F401, E402
from tests.support.fake_slack import fake_slack_fixture  # noqa: F401 (the fake_slack fixture)
from tests.support.services import (
    REDIS_DBS,
    area_broker,
    area_queue,
    celery_worker_running,
    embedded_beat,
    environment_set,
    route_enqueues,
    worker_config,
)
from tests.support.waiting import wait_for

REDIS_DB = REDIS_DBS["e2e"]
BROKER = area_broker("e2e")
QUEUE = area_queue("e2e")
TICK_S = 1.0
BUCKET = "trainops-e2e"
CHANNEL, REQUESTER, APPROVER = "C0TEST", "UREQUESTER", "UAPPROVER"


@pytest.fixture(scope="package")
def e2e_env(fake_slack, moto_server, tmp_path_factory):
    from tests.support.slack_harness import BOT_TOKEN, SIGNING_SECRET

    tmp = tmp_path_factory.mktemp("e2e")
    (tmp / "tmp").mkdir()
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "TRAINOPS_BROKER_URL": BROKER,
        "TRAINOPS_QUEUE": QUEUE,
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
    with environment_set(env, drop=("SLACK_APP_TOKEN", "TRAINOPS_AWS_AMI")):
        yield {**env, "tmp": tmp}


CELERY_CONFIG = worker_config(BROKER, QUEUE, TICK_S)


@pytest.fixture(scope="package")
def e2e_worker(e2e_env):
    """A real worker on the e2e Redis database (this run's queue) with the runner's and the bot's
    tasks. The jobs service enqueues through workers.queue.app; for this package that is this
    app, so an approval's provision task reaches this worker and no other."""
    import redis

    redis.Redis.from_url(BROKER).delete(QUEUE)
    with celery_worker_running(CELERY_CONFIG, ["workers.queue.tasks", "bot.slack.tasks"]) as (
            app, _running):
        with pytest.MonkeyPatch.context() as mp:
            route_enqueues(app, mp)
            yield app
    redis.Redis.from_url(BROKER).delete(QUEUE)


@pytest.fixture
def beat(e2e_worker, tmp_path):
    """celery beat on a thread, sending the monitor tick every TICK_S."""
    from celery.worker import state

    with embedded_beat(e2e_worker, tmp_path, TICK_S):
        yield e2e_worker

    # Let an in-flight tick finish before the env goes.
    wait_for(lambda: not state.active_requests, what="the worker's tasks in flight to end")
