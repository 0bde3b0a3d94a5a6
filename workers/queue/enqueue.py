"""The one way to hand work to the workers: a task name (schemas/tasks.py) and its arguments.

Named, not imported: the caller never loads the task's code (the bot stays free of the workers'
imports). A broker that is down raises `EnqueueFailed`; callers that have already committed a
decision record it and let the monitor's sweep retry.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("trainops.queue")


class EnqueueFailed(Exception):
    """The broker could not take the message."""


def enqueue(name: str, *args: Any, app=None, **kwargs: Any) -> None:
    if app is None:
        from workers.queue.app import get_app

        app = get_app()
    try:
        app.send_task(name, args=list(args), kwargs=kwargs)
    except Exception as exc:  # noqa: BLE001 - kombu raises several types for a broker outage
        log.error("could not enqueue %s: %s", name, exc)
        raise EnqueueFailed(f"could not reach the broker ({type(exc).__name__})") from exc
