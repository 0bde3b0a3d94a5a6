"""Telling people what happened to a job: a line in the job's Slack thread, or on the console.

The runner's tasks call `notifier.event(job, kind, text)` after each move they apply (launched,
running, succeeded, failed, cancelled, ...). A notification that cannot be delivered is logged
and dropped: the move itself is already in the database and the event log.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from schemas.errors import UserError

if TYPE_CHECKING:
    from schemas.settings import Settings
    from workers.rules.cards import ProgressCard, WarningCard
    from workers.state.jobs import JobView

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def event(self, job: JobView, kind: str, text: str) -> None:
        """Post one line about `job` where its people look (its thread, the console)."""
        ...

    def progress(self, job: JobView, card: ProgressCard, ref: str | None) -> str | None:
        """Post the job's progress message (ref None) or update the message `ref` in place;
        return the ref to keep for the next update (Slack: the message ts; None when the
        notifier has no message to update)."""
        ...

    def warning(self, job: JobView, card: WarningCard) -> None:
        """The spend warning, to the channel, mentioning the requester, with buttons
        extend_cap / stop_now / let_run (value: the job id)."""
        ...

    def ask_recovery(self, job: JobView, text: str) -> None:
        """After an interruption that recovery may not pay for: buttons continue_recovery /
        stop_now (value: the job id)."""
        ...

    def report(self, job: JobView, text: str, chart: Path | None) -> None:
        """The final report, broadcast, with the chart PNG (if any) uploaded to the thread."""
        ...


class ConsoleNotifier:
    """Prints `[job] kind: text`; the notifier when Slack is not configured (CLI, demo, tests)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def event(self, job: JobView, kind: str, text: str) -> None:
        stream = self.stream or sys.stdout
        print(f"[{job.job_id}] {kind}: {text}", file=stream, flush=True)

    def progress(self, job: JobView, card: ProgressCard, ref: str | None) -> str | None:
        self.event(job, "progress", " | ".join(card.lines()))
        return None  # a terminal cannot update a line in place

    def warning(self, job: JobView, card: WarningCard) -> None:
        self.event(job, "warning", " ".join(card.lines()))

    def ask_recovery(self, job: JobView, text: str) -> None:
        self.event(job, "ask_recovery", f"{text} (trainops: continue_recovery or stop_now)")

    def report(self, job: JobView, text: str, chart: Path | None) -> None:
        where = f"\nchart: {chart}" if chart else ""
        self.event(job, "report", f"{text}{where}")


class RecordingNotifier:
    """Keeps every (job_id, kind, text) in memory: for a terminal that follows a job, and tests."""

    def __init__(self):
        self.events: list[tuple[str, str, str]] = []
        self.cards: list[tuple[str, ProgressCard, str | None]] = []  # (job_id, card, ref given)
        self.warnings: list[tuple[str, WarningCard]] = []
        self.asks: list[tuple[str, str]] = []
        self.reports: list[tuple[str, str, Path | None]] = []

    def event(self, job: JobView, kind: str, text: str) -> None:
        self.events.append((job.job_id, kind, text))

    def progress(self, job: JobView, card: ProgressCard, ref: str | None) -> str | None:
        self.cards.append((job.job_id, card, ref))
        return ref or f"progress-{job.job_id}"  # a stable ref, like a Slack ts

    def warning(self, job: JobView, card: WarningCard) -> None:
        self.warnings.append((job.job_id, card))

    def ask_recovery(self, job: JobView, text: str) -> None:
        self.asks.append((job.job_id, text))

    def report(self, job: JobView, text: str, chart: Path | None) -> None:
        self.reports.append((job.job_id, text, chart))


def notifier_for(settings: Settings) -> Notifier:
    """The notifier the settings name (TRAINOPS_NOTIFIER): loaded by name, so the runner depends
    only on the protocol above and Slack's code loads only where Slack is configured."""
    path = settings.notifier_path
    if path == "console":
        return ConsoleNotifier()
    module_name, _, class_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"TRAINOPS_NOTIFIER={path!r} names no notifier class ({exc}); use "
                        "auto, console or package.module:Class") from exc
    return cls(settings)


def safe_notify(notifier: Notifier, job: JobView | None, method: str, *args):
    """Call `notifier.<method>(job, *args)` best effort: returns its result, or None when it
    failed (logged) or the job is gone. For progress / warning / ask_recovery / report."""
    if job is None:
        return None
    try:
        return getattr(notifier, method)(job, *args)
    except Exception:  # noqa: BLE001 - a message is best effort; the job's state is recorded
        log.exception("could not notify %s (%s)", job.job_id, method)
        return None


def safe_event(notifier: Notifier, job: JobView | None, kind: str, text: str) -> None:
    """Notify without ever failing the caller: Slack being down must not undo a launch."""
    if job is None:
        return
    try:
        notifier.event(job, kind, text)
    except Exception:  # noqa: BLE001 - the move is recorded; the message is best effort
        log.exception("could not notify %s about %s", job.job_id, kind)
