"""The Celery app: broker, task policy and the beat schedule, all in this one place.

Policy (STYLE.md, "Celery"):
- Tasks take ids and are named explicitly ("trainops.jobs.*"), so a rename of a function never
  strands messages already in Redis.
- `acks_late` only on idempotent tasks (every runner task is: each move is a claim, launching
  reconciles by tag first); a task lost with its worker is then delivered again.
- No countdowns or ETAs: Redis redelivers a delayed message again and again once it outlives the
  visibility timeout. Anything that must happen later is decided by the periodic monitor.
- Every beat entry below carries its cadence and an `expires` no longer than that cadence, so
  a stopped worker does not come back to a pile of stale ticks.
"""

from __future__ import annotations

from celery import Celery

from schemas.settings import Settings, get_settings

# Longer than the longest task (a provision with fallbacks and a verified terminate takes
# minutes), so a slow task is not handed to a second worker while the first still runs.
VISIBILITY_TIMEOUT_S = 3600
EXPIRE_QUOTES_EVERY_S = 300.0


def beat_schedule(settings: Settings) -> dict:
    """Every periodic task, with its cadence; `expires` drops a tick nobody ran in time."""
    monitor = settings.monitor_interval_s
    reaper = settings.reaper_interval_s
    return {
        # Every 30 s (TRAINOPS_MONITOR_INTERVAL): one DescribeInstances for all live AWS
        # attempts, read the agents' status/progress, apply moves, re-enqueue stuck jobs.
        "monitor-tick": {"task": "trainops.jobs.monitor_tick", "schedule": monitor,
                         "options": {"expires": monitor}},
        # Every 10 min (TRAINOPS_REAPER_INTERVAL): terminate tagged machines no attempt owns.
        "reaper": {"task": "trainops.jobs.reap", "schedule": reaper,
                   "options": {"expires": reaper}},
        # Every 5 min: quotes nobody decided on in their time to live expire (prices move).
        "expire-quotes": {"task": "trainops.jobs.expire_quotes", "schedule": EXPIRE_QUOTES_EVERY_S,
                          "options": {"expires": EXPIRE_QUOTES_EVERY_S}},
    }


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
        "beat_schedule": beat_schedule(settings),
    }


def make_celery(settings: Settings) -> Celery:
    app = Celery("trainops", include=["workers.tasks", "workers.slack_tasks"])
    app.conf.update(celery_config(settings))
    return app


app = make_celery(get_settings())


def run_worker(args) -> int:
    """`trainops worker`."""
    argv = ["worker", f"--loglevel={args.loglevel}"]
    if getattr(args, "concurrency", None):
        argv.append(f"--concurrency={args.concurrency}")
    app.worker_main(argv)
    return 0


def run_beat(args) -> int:
    """`trainops beat`."""
    app.start(["beat", f"--loglevel={args.loglevel}"])
    return 0
