"""The Celery app: broker and task policy.

Policy:
- Tasks take ids and are named explicitly ("trainops.jobs.*"), so a rename of a function never
  strands messages already in Redis.
- `acks_late` only on idempotent tasks (every runner task is: each move is a claim, launching
  reconciles by tag first); a task lost with its worker is then delivered again.
- No countdowns or ETAs: Redis redelivers a delayed message again and again once it outlives the
  visibility timeout. Anything that must happen later is decided by the periodic monitor.
- The beat table is in schedule.py, task names in schemas/tasks.py, and the one way to hand
  work to a worker is enqueue.py.
- The app is built on first use, not at import: importing a module never reads settings or
  touches the broker, and tests build theirs with their own settings.
"""

from __future__ import annotations

from celery import Celery

from schemas import tasks
from schemas.settings import Settings, get_settings
from workers.queue.schedule import beat_schedule

# Longer than the longest task (a provision with fallbacks and a verified terminate takes
# minutes), so a slow task is not handed to a second worker while the first still runs.
VISIBILITY_TIMEOUT_S = 3600


def celery_config(settings: Settings) -> dict:
    return {
        "broker_url": settings.broker_url,
        "broker_connection_timeout": 3,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
        },
        # A publish to a broker that is down fails within about a second instead of hanging
        # the Slack handler or the CLI; the monitor re-enqueues what was missed.
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0,
                                      "interval_step": 0.3, "interval_max": 0.5},
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": False,  # opted into per task, only where the task is idempotent
        "task_reject_on_worker_lost": False,
        "worker_prefetch_multiplier": 1,  # a slow launch must not hold other jobs' messages
        "timezone": "UTC",
        # Everything (tasks sent by name, beat's entries) goes to this deployment's own queue.
        "task_default_queue": settings.queue,
        "beat_schedule": beat_schedule(settings),
    }


def make_celery(settings: Settings) -> Celery:
    app = Celery("trainops", include=list(tasks.TASK_MODULES))
    app.conf.update(celery_config(settings))
    return app


_app: Celery | None = None


def get_app() -> Celery:
    """The process's Celery app, built from the settings on first use."""
    global _app
    if _app is None:
        _app = make_celery(get_settings())
    return _app


def __getattr__(name: str):
    # `celery -A workers.queue.app` and `from workers.queue.app import app` find the app here,
    # built only when asked for.
    if name == "app":
        return get_app()
    raise AttributeError(name)


def _log_level(args) -> str:
    """The level asked for on the command line, else TRAINOPS_LOG_LEVEL; our logging set-up
    (workers/logs.py) replaces Celery's own."""
    import logging

    from workers.logs import level_of, use_for_celery

    level = logging.getLevelName(level_of(getattr(args, "log_level", None)))
    use_for_celery(level)
    return level


def run_worker(args) -> int:
    """`trainops worker`."""
    argv = ["worker", f"--loglevel={_log_level(args)}"]
    if getattr(args, "concurrency", None):
        argv.append(f"--concurrency={args.concurrency}")
    get_app().worker_main(argv)
    return 0


def run_beat(args) -> int:
    """`trainops beat`."""
    get_app().start(["beat", f"--loglevel={_log_level(args)}"])
    return 0
