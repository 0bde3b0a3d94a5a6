"""The one logging set-up of trainops' long-running processes (`trainops worker`, `beat`, `serve`,
and the demo's worker): our lines at the chosen level, everyone else's at WARNING.

Our lines tell a job's story, one line a step, each naming the job and the attempt
(workers/state/records.py logs every event: "j-4f2a9c attempt 2: launched i-0ab… g5.xlarge spot in
us-east-1a at $0.4012/h"). The libraries underneath talk a lot at INFO — botocore's "Found
credentials in environment variables", alembic's "Context impl", urllib3's connection pool,
kombu and Celery's per-task "received"/"succeeded" lines for a monitor tick every 30 s — and
that is what made a worker's log unreadable: their INFO is dropped, their warnings and errors
kept. At DEBUG, everything is shown.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Third-party loggers held at WARNING (their children too: logging is hierarchical).
CHATTY = (
    "botocore", "boto3", "s3transfer", "urllib3", "alembic", "kombu", "amqp", "redis",
    "celery", "slack_bolt", "slack_sdk", "filelock", "matplotlib", "PIL", "httpx", "httpcore",
    "asyncio", "sqlalchemy", "fsspec", "datasets", "transformers", "torch", "moto", "werkzeug",
)
# Celery's own lines worth keeping at INFO: "celery@host ready." and beat's start.
CELERY_KEPT = ("celery.apps.worker", "celery.apps.beat")
_HANDLER_NAME = "trainops"


def level_of(value: str | int | None) -> int:
    """'info', 'INFO', 20 -> 20; None -> the settings' TRAINOPS_LOG_LEVEL."""
    if value is None:
        from schemas.settings import get_settings

        value = get_settings().log_level
    if isinstance(value, int):
        return value
    name = value.strip().upper()
    if name not in LEVELS:
        from schemas.errors import UserError

        raise UserError(f"log level {value!r}: use one of {', '.join(x.lower() for x in LEVELS)}")
    return logging.getLevelName(name)


def setup_logging(level: str | int | None = None, stream: TextIO | None = None) -> int:
    """Configure the root logger once (calling again replaces our handler, never adds one).
    Returns the level in force."""
    chosen = level_of(level)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(chosen)
    quiet = chosen if chosen <= logging.DEBUG else max(chosen, logging.WARNING)
    for name in CHATTY:
        logging.getLogger(name).setLevel(quiet)
    for name in CELERY_KEPT:
        logging.getLogger(name).setLevel(chosen)
    logging.captureWarnings(True)
    return chosen


def use_for_celery(level: str | int | None = None) -> None:
    """Celery configures logging itself unless someone answers its `setup_logging` signal:
    answer it with ours (the worker's --loglevel wins when given on its command line)."""
    from celery.signals import setup_logging as celery_setup_logging

    def _setup(loglevel=None, logfile=None, format=None, colorize=None, **_kwargs):  # noqa: A002
        stream = open(logfile, "a", buffering=1) if logfile else None  # noqa: SIM115
        setup_logging(loglevel if loglevel is not None else level, stream)

    celery_setup_logging.connect(_setup, weak=False)
