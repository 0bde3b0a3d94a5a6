"""A tiny Slack Web API on 127.0.0.1 (port 0), after bolt-python's tests/mock_web_api_server.

It records every call (method, form/query params, JSON body, whether a bearer token came) and
answers `ok: true` with a fresh `ts`, so tests assert on what reached "Slack". It also serves
response_url posts (`/response/<anything>`), recorded as method "response_url". A method can be
told to answer 429 once, to prove the rate-limit retry handler is on.

It plays Slack's external file upload too (what `files_upload_v2` does): files.getUploadURLExternal
answers an upload_url pointing back here (`/upload/<file_id>`), the raw POST of the bytes to it
is kept in `uploads[file_id]` (recorded as method "upload"), and files.completeUploadExternal
answers the files it completed.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

import pytest


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    json: dict[str, Any] | None
    authorized: bool
    body: dict[str, Any] = field(default_factory=dict)  # params and json merged
    answer: dict[str, Any] = field(default_factory=dict)  # what the fake answered (ok, ts, ...)

    def blocks(self) -> list[dict]:
        raw = self.body.get("blocks") or []
        return json.loads(raw) if isinstance(raw, str) else raw


class FakeSlack:
    def __init__(self):
        self.calls: list[Call] = []
        self.rate_limit_once: set[str] = set()
        self.fail_once: dict[str, str] = {}  # method -> Slack error code, answered once
        self.uploads: dict[str, bytes] = {}  # file_id -> the bytes POSTed to its upload_url
        self._file_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: tests read .calls, not stderr
                pass

            def do_POST(self):
                fake._handle(self)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.api_url = self.url + "/api/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.rate_limit_once.clear()
            self.fail_once.clear()
            self.uploads.clear()

    # -- recording and answering ---------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlparse(h.path)
        data = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if url.path.startswith("/upload/"):
            self._upload(h, url.path.removeprefix("/upload/"), data)
            return
        raw = data.decode()
        params = dict(parse_qsl(url.query))
        body_json = None
        if "json" in (h.headers.get("Content-Type") or ""):
            body_json = json.loads(raw or "{}")
        else:
            params.update(parse_qsl(raw))
        if url.path.startswith("/response/"):
            method = "response_url"
        else:
            method = url.path.removeprefix("/api/")
        authorized = (h.headers.get("Authorization") or "").startswith("Bearer ") or "token" in params
        call = Call(method, params, body_json, authorized, {**params, **(body_json or {})})
        with self._lock:
            self.calls.append(call)
            limited = method in self.rate_limit_once
            self.rate_limit_once.discard(method)
            error = self.fail_once.pop(method, None)
        if error:
            self._reply(h, 200, {"ok": False, "error": error})
            return
        if limited:
            self._reply(h, 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"})
            return
        call.answer = self._answer(call)
        self._reply(h, 200, call.answer)

    def _answer(self, call: Call) -> dict[str, Any]:
        ts = f"{1_700_000_000 + next(self._ts)}.000100"
        channel = call.body.get("channel", "C0TEST")
        if call.method == "auth.test":
            return {"ok": True, "url": "https://trainops-test.slack.com/", "team": "test",
                    "user": "trainops", "team_id": "T0TEST", "user_id": "U0BOT",
                    "bot_id": "B0BOT", "is_enterprise_install": False}
        if call.method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if call.method == "files.getUploadURLExternal":
            file_id = f"F{next(self._file_ids):08d}"
            return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if call.method == "files.completeUploadExternal":
            done = json.loads(call.body.get("files") or "[]")
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title", ""),
                                           "name": f.get("title", "")} for f in done]}
        if call.method in ("chat.postMessage", "chat.update"):
            ts = call.body.get("ts", ts)
            return {"ok": True, "channel": channel, "ts": ts,
                    "message": {"text": call.body.get("text", ""), "ts": ts}}
        return {"ok": True, "ts": ts}

    def _upload(self, h: BaseHTTPRequestHandler, file_id: str, data: bytes) -> None:
        """The upload_url: Slack's file edge takes the raw bytes and answers plain text."""
        with self._lock:
            self.calls.append(Call("upload", {"file_id": file_id}, None, False,
                                   {"file_id": file_id, "length": len(data)}))
            self.uploads[file_id] = data
        answer = f"OK - {len(data)}".encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(answer)))
        h.end_headers()
        h.wfile.write(answer)

    @staticmethod
    def _reply(h, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    # -- asserting -----------------------------------------------------------------------------
    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float | None = None,
                 where=None) -> list[Call]:
        """The calls of `method` (matching `where`), once at least `count` have arrived; the
        deadline is a hang's (tests/support/waiting.py)."""
        from tests.support.waiting import deadline_s

        deadline = time.monotonic() + deadline_s(timeout)
        while True:
            found = [c for c in self.of(method) if where is None or where(c)]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, (
                    f"expected {count} {method} call(s), got {len(found)}; "
                    f"all calls: {[c.method for c in self.calls]}"
                )
                return found
            time.sleep(0.02)


@pytest.fixture(scope="package", name="fake_slack")
def fake_slack_fixture():
    """One stand-in Slack Web API per test package (import this fixture in the conftest)."""
    server = FakeSlack().start()
    yield server
    server.stop()
