"""The Bolt app: `build_app(settings, config, db)` wires the listeners, the access middleware and
the one error handler onto a Slack App. It serves HTTP or Socket Mode alike (bot/slack/serve.py).

Listeners ack first and stay short: a quote is a Celery task, a click is one conditional update
in the database. Who may use the bot and which job a button names are cross-cutting, so they
live in middleware (access.py); the listeners are in listeners/commands.py, listeners/approval.py
(the quote's buttons) and listeners/spend.py (the spend guard's buttons).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from slack_bolt import App
from slack_sdk import WebClient

from bot.slack import access
from bot.slack.deps import Deps
from bot.slack.listeners import approval, commands, spend
from bot.slack.notifier import slack_client
from bot.slack.replay import replay_guard
from schemas.errors import UserError

if TYPE_CHECKING:
    from celery import Celery

    from schemas.config import TeamConfig
    from schemas.db.database import Database
    from schemas.settings import Settings

log = logging.getLogger("trainops.bot")


def build_app(settings: Settings, config: TeamConfig, db: Database, *,
              client: WebClient | None = None, celery: Celery | None = None) -> App:
    """A Bolt App for this team. `client` and `celery` default to the real ones; tests pass a
    WebClient aimed at their fake Slack and the Celery app their worker listens with."""
    if settings.slack_signing_secret is None:
        raise UserError("SLACK_SIGNING_SECRET is not set; copy it from the Slack app's Basic "
                        "Information page")
    if celery is None:
        from workers.queue.app import app as celery
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
    app.middleware(replay_guard(deps))  # after Bolt's signature check: a signature seen twice
    app.middleware(access.access(deps))
    commands.register(app, deps)
    approval.register(app, deps)
    spend.register(app, deps)
    app.error(access.error_handler(deps))
    return app
