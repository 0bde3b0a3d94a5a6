"""The Bolt app: `build_app(settings, config, db)` wires the listeners, the access middleware and
the one error handler onto a Slack App. It serves HTTP or Socket Mode alike (bot/serve.py).

Listeners ack first and stay short: a quote is a Celery task, a click is one conditional update
in the database. Who may use the bot and which job a button names are cross-cutting, so they
live in middleware (bot/guards.py); the listeners are in bot/on_command.py, bot/on_action.py
(the quote's buttons) and bot/on_guard_action.py (the spend guard's buttons).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import guards, on_action, on_command, on_guard_action
from schemas.errors import UserError
from workers.notify_slack import slack_client

if TYPE_CHECKING:
    from celery import Celery

    from schemas.config import TeamConfig
    from schemas.db import Database
    from schemas.settings import Settings

log = logging.getLogger("trainops.bot")


@dataclass
class Deps:
    """What every listener needs, built once per process and passed down."""

    settings: Settings
    config: TeamConfig
    db: Database
    celery: Any  # a Celery app; only `send_task` is used, so the bot never imports the tasks

    def enqueue(self, name: str, **kwargs: Any) -> None:
        # Named, not imported: the bot process stays free of the workers' code and imports.
        self.celery.send_task(name, kwargs=kwargs)


def build_app(settings: Settings, config: TeamConfig, db: Database, *,
              client: WebClient | None = None, celery: Celery | None = None) -> App:
    """A Bolt App for this team. `client` and `celery` default to the real ones; tests pass a
    WebClient aimed at their fake Slack and the Celery app their worker listens with."""
    if settings.slack_signing_secret is None:
        raise UserError("SLACK_SIGNING_SECRET is not set; copy it from the Slack app's Basic "
                        "Information page")
    if celery is None:
        from workers.celery_app import app as celery
    deps = Deps(settings, config, db, celery)
    app = App(
        client=client or slack_client(settings),
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        # ack() answers Slack at once; the rest of a listener runs on Bolt's thread pool.
        process_before_response=False,
        # Bolt's default pool has 5 threads; a burst of commands would queue behind each other's
        # enqueue and miss the 3 s window. Listeners are short and I/O bound, so 32 is cheap.
        listener_executor=ThreadPoolExecutor(max_workers=32, thread_name_prefix="bolt-listener"),
        logger=logging.getLogger("trainops.bolt"),
    )
    app.middleware(guards.access(deps))
    on_command.register(app, deps)
    on_action.register(app, deps)
    on_guard_action.register(app, deps)
    app.error(guards.error_handler(deps))
    return app
