"""Replayed requests do nothing twice.

Slack signs `v0:<timestamp>:<body>`, and Bolt accepts a signature for five minutes, so a request
captured on the way (a proxy log, a debugging dump) could be sent again and again within that
window: three sends of one `/train` were three jobs. Each signature is remembered in Redis for
the window (SET NX with a TTL); a second sighting is answered 200 with nothing done.

If Redis itself is down the request goes through (logged): the broker is the same Redis, so the
command then fails to enqueue and says so — refusing everything would not be safer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_bolt import BoltResponse

if TYPE_CHECKING:
    from bot.slack.deps import Deps

log = logging.getLogger("trainops.bot")
WINDOW_S = 5 * 60 + 60  # Bolt's signature window, plus clock slack between Slack and us
PREFIX = "trainops:slack-seen:"


def replay_guard(deps: Deps):
    client = None

    def redis_client():
        nonlocal client
        if client is None:
            import redis

            client = redis.Redis.from_url(deps.settings.broker_url, socket_timeout=1,
                                          socket_connect_timeout=1)
        return client

    def guard(req, next):  # noqa: A002 - Bolt's argument name
        signature = (req.headers.get("x-slack-signature") or [""])[0]
        timestamp = (req.headers.get("x-slack-request-timestamp") or [""])[0]
        if not signature:
            return next()  # Socket Mode: not signed, and the websocket is authenticated
        try:
            first = redis_client().set(f"{PREFIX}{timestamp}:{signature}", 1, nx=True,
                                       ex=WINDOW_S)
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            log.warning("replay check skipped (Redis: %s)", type(exc).__name__)
            return next()
        if first:
            return next()
        log.warning("replayed Slack request ignored (timestamp %s)", timestamp)
        return BoltResponse(status=200, body="")

    return guard
