"""The beat table: every periodic task in one place, with its cadence and why.

Every entry carries an `expires` no longer than its cadence, so a worker that was stopped does
not come back to a pile of stale ticks. Nothing here schedules "do X in an hour" as a delayed
task: Redis redelivers a delayed message again and again once it outlives the visibility
timeout, so anything that must happen later is decided by the periodic monitor.
"""

from __future__ import annotations

from schemas import tasks
from schemas.settings import Settings

EXPIRE_QUOTES_EVERY_S = 300.0


def beat_schedule(settings: Settings) -> dict:
    """Every periodic task, with its cadence; `expires` drops a tick nobody ran in time."""
    monitor = settings.monitor_interval_s
    reaper = settings.reaper_interval_s
    return {
        # Every 30 s (TRAINOPS_MONITOR_INTERVAL): one DescribeInstances for all live AWS
        # attempts, read the agents' status/progress, apply moves, re-enqueue stuck jobs.
        "monitor-tick": {"task": tasks.MONITOR_TICK, "schedule": monitor,
                         "options": {"expires": monitor}},
        # Every 10 min (TRAINOPS_REAPER_INTERVAL): terminate tagged machines no attempt owns.
        "reaper": {"task": tasks.REAP, "schedule": reaper,
                   "options": {"expires": reaper}},
        # Every 5 min: quotes nobody decided on in their time to live expire (prices move).
        "expire-quotes": {"task": tasks.EXPIRE_QUOTES, "schedule": EXPIRE_QUOTES_EVERY_S,
                          "options": {"expires": EXPIRE_QUOTES_EVERY_S}},
    }
