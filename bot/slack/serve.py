"""`trainops serve`: the Slack bot, in Socket Mode when SLACK_APP_TOKEN is set (no public URL
needed), otherwise over HTTP at /slack/events.

The HTTP side is a small threaded stdlib server that only translates: a request becomes a
BoltRequest, `app.dispatch()` runs it (signature check included: a forged or stale request gets
401 from Bolt's RequestVerification middleware), and the BoltResponse goes back.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from slack_bolt.request import BoltRequest

from schemas.errors import UserError

if TYPE_CHECKING:
    import argparse

    from slack_bolt import App

    from schemas.settings import Settings

log = logging.getLogger("trainops.serve")
EVENTS_PATH = "/slack/events"
MAX_BODY = 1 << 20  # Slack's payloads are a few KB; refuse anything absurd before reading it
READ_TIMEOUT_S = 10.0  # a client that sends its body slower than this loses the connection
MAX_CONNECTIONS = 64  # threads serving at once; more get 503 at once instead of a new thread


class SlackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of commands queue instead of being refused

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0,
                 max_connections: int = MAX_CONNECTIONS):
        self.app = app
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__((host, port), _Handler)

    def process_request(self, request, client_address):
        """One thread per connection, but never more than max_connections: a flood of slow
        clients gets 503 and a closed socket, not a thread each."""
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="slack-http", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: SlackHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_S  # socket timeout for every read: a slow body cannot hold a thread

    def log_message(self, fmt, *args):  # access lines at debug; never headers or bodies
        log.debug("%s %s", self.address_string(), fmt % args)

    def do_GET(self):
        path = urlparse(self.path).path
        if path == "/healthz":
            self._send(200, b"ok", {"content-type": ["text/plain"]})
        else:
            self._send(404, b"not found", {"content-type": ["text/plain"]})

    def do_POST(self):
        url = urlparse(self.path)
        if url.path != EVENTS_PATH:
            self._send(404, b"not found", {"content-type": ["text/plain"]})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._bad("Content-Length is not a number")
            return
        if length > MAX_BODY:
            self._send(413, b"payload too large", {"content-type": ["text/plain"]})
            return
        try:
            raw = self.rfile.read(length)
        except OSError:  # the read timeout (TimeoutError) or a reset: drop it, no traceback
            log.warning("dropped %s: body not received within %.0f s", self.address_string(),
                        READ_TIMEOUT_S)
            self.close_connection = True
            return
        if len(raw) < length:  # the client went away before sending its whole body
            self.close_connection = True
            return
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._bad("the body is not UTF-8")
            return
        headers: dict[str, list[str]] = {}
        for key, value in self.headers.items():
            headers.setdefault(key.lower(), []).append(value)
        try:
            request = BoltRequest(body=body, query=url.query, headers=headers)
            response = self.server.app.dispatch(request)
        except Exception as exc:  # noqa: BLE001 - malformed input never earns a traceback
            self._bad(f"malformed request ({type(exc).__name__})")
            return
        self._send(response.status, response.body.encode("utf-8"), response.headers)

    def _bad(self, why: str) -> None:
        log.warning("400 from %s: %s", self.address_string(), why)
        self._send(400, b"bad request", {"content-type": ["text/plain"]})

    def _send(self, status: int, data: bytes, headers: dict[str, list[str]]) -> None:
        try:
            self._write(status, data, headers)
        except OSError:  # the client hung up: nothing to answer, nothing to trace
            self.close_connection = True

    def _write(self, status: int, data: bytes, headers: dict[str, list[str]]) -> None:
        self.send_response(status)
        for key, values in headers.items():
            if key.lower() == "content-length":
                continue
            for value in values:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def require_slack_settings(settings: Settings, *, socket_mode: bool) -> None:
    missing = ["SLACK_BOT_TOKEN"] if settings.slack_bot_token is None else []
    if settings.slack_signing_secret is None and not socket_mode:
        missing.append("SLACK_SIGNING_SECRET")
    if missing:
        raise UserError(
            f"{' and '.join(missing)} not set; copy them from the Slack app's settings "
            "(bot token: OAuth & Permissions, signing secret: Basic Information)"
        )


def build_from_settings(settings: Settings, *, socket_mode: bool = False) -> App:
    from slack_bolt.error import BoltError

    from bot.slack.app import build_app
    from schemas.config import cached_config
    from schemas.db.database import get_database

    require_slack_settings(settings, socket_mode=socket_mode)
    try:
        return build_app(settings, cached_config(settings.config_path), get_database(settings))
    except BoltError as exc:  # auth.test refused the token, typically
        raise UserError(f"Slack refused the bot token: {str(exc).splitlines()[0]}") from None


def run(args: argparse.Namespace) -> int:
    from schemas.settings import get_settings
    from workers.logs import setup_logging

    setup_logging(getattr(args, "log_level", None))
    settings = get_settings()
    socket_mode = settings.slack_app_token is not None and not getattr(args, "http", False)
    if socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        settings = settings.model_copy(update={"slack_signing_secret": settings.slack_signing_secret
                                               or _unused_secret()})
        app = build_from_settings(settings, socket_mode=True)
        log.info("serving Slack in Socket Mode")
        # The app's own client: SLACK_API_URL and the rate-limit retry handler apply here too.
        SocketModeHandler(app, settings.slack_app_token.get_secret_value(),
                          web_client=app.client).start()
        return 0
    app = build_from_settings(settings)
    server = SlackHTTPServer(app, args.host, args.port)
    log.info("serving Slack over HTTP on %s:%d%s", args.host, server.port, EVENTS_PATH)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _unused_secret():
    """Socket Mode requests are not signed (the websocket is authenticated by the app token),
    so a signing secret is optional there; Bolt still wants a value."""
    from pydantic import SecretStr

    return SecretStr("socket-mode-requests-are-not-signed")
