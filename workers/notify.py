"""Telling people what happened to a job: a line in the job's Slack thread, or on the console.

The runner's tasks call `notifier.event(job, kind, text)` after each move they apply (launched,
running, succeeded, failed, cancelled, ...). A notification that cannot be delivered is logged
and dropped: the move itself is already in the database and the event log.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from schemas.settings import Settings
    from workers.jobs import JobView

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def event(self, job: JobView, kind: str, text: str) -> None:
        """Post one line about `job` where its people look (its thread, the console)."""
        ...


class ConsoleNotifier:
    """Prints `[job] kind: text`; the notifier when Slack is not configured (CLI, demo, tests)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def event(self, job: JobView, kind: str, text: str) -> None:
        stream = self.stream or sys.stdout
        print(f"[{job.job_id}] {kind}: {text}", file=stream, flush=True)


class RecordingNotifier:
    """Keeps every (job_id, kind, text) in memory: for a terminal that follows a job, and tests."""

    def __init__(self):
        self.events: list[tuple[str, str, str]] = []

    def event(self, job: JobView, kind: str, text: str) -> None:
        self.events.append((job.job_id, kind, text))


def notifier_for(settings: Settings) -> Notifier:
    if settings.slack_bot_token is not None:
        from workers.notify_slack import SlackNotifier  # only when Slack is configured

        return SlackNotifier(settings)
    return ConsoleNotifier()


def safe_event(notifier: Notifier, job: JobView | None, kind: str, text: str) -> None:
    """Notify without ever failing the caller: Slack being down must not undo a launch."""
    if job is None:
        return
    try:
        notifier.event(job, kind, text)
    except Exception:  # noqa: BLE001 - the move is recorded; the message is best effort
        log.exception("could not notify %s about %s", job.job_id, kind)
