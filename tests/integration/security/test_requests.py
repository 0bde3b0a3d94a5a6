"""Findings 7 and 10 at the HTTP edge: a replayed signed `/train` makes one job, not three; a
malformed body is a 400 without a traceback; slow bodies time out and cannot take more than a
bounded number of threads; a Redis outage during /train says what failed and the exact command
to send again."""

from __future__ import annotations

import json
import socket
import threading
import time

from celery import Celery
from slack_sdk.signature import SignatureVerifier

from bot.slack import serve as serve_module
from tests.integration.security.conftest import make_bot
from tests.support.slack_harness import SIGNING_SECRET, SMALL, Bot, wait_until
from workers.state.jobs import list_jobs


def test_a_replayed_train_makes_one_job(bot, database):
    text = f"{SMALL} samples=7"  # this test's own text: its jobs are counted by it
    body = bot.command_body(text)
    ts = int(time.time())
    sig = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=str(ts), body=body)
    answers = [bot.post(body, timestamp=ts, signature=sig) for _ in range(3)]
    assert [status for status, _ in answers] == [200, 200, 200]
    assert "Quoting" in json.loads(answers[0][1])["text"]
    assert answers[1][1] == "" and answers[2][1] == "", "a replay was acted on"
    bot.slack.wait_for("chat.postMessage", where=lambda c: "thread_ts" not in c.body)
    trigger = dict(part.split("=", 1) for part in body.split("&"))["trigger_id"]
    assert trigger  # the harness sends a fresh trigger_id per command, as Slack does
    assert sum(j.text == text for j in list_jobs(database, limit=1000)) == 1


def _raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_malformed_bodies_are_400_without_a_traceback(bot, capsys, caplog):
    body = "payload=%7Bnot-json"
    status, _ = bot.post(body)
    assert status == 400
    port = int(bot.url.split(":")[2].split("/")[0])
    answer = _raw(port, b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert bot.post(bot.command_body("help"))[0] == 200  # and the server still serves
    seen = capsys.readouterr().err + caplog.text
    assert "Traceback" not in seen


def test_slow_bodies_time_out_and_threads_are_bounded(worker, fake_slack, database, monkeypatch,
                                                      capsys):
    monkeypatch.setattr(serve_module._Handler, "timeout", 1.0)
    from bot.slack.app import build_app
    from schemas.config import cached_config
    from schemas.settings import get_settings

    settings = get_settings()
    app = build_app(settings, cached_config(settings.config_path), database, celery=worker)
    server = serve_module.SlackHTTPServer(app, "127.0.0.1", 0, max_connections=4)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    slow = []
    try:
        before = threading.active_count()
        for _ in range(20):  # headers, then a body that never comes
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n")
            slow.append(sock)
        assert threading.active_count() - before <= 4, "a thread per slow client"
        busy = _raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert busy.startswith(b"HTTP/1.1 503") or busy.startswith(b"HTTP/1.1 200")
        # The read timeout frees the threads: the bot answers a signed command again.
        bot = Bot(f"http://127.0.0.1:{server.port}/slack/events", fake_slack, app, database)
        def answers() -> bool:
            try:
                return bot.post(bot.command_body("help"))[0] == 200
            except OSError:  # 503 and a closed socket while the slots are still taken
                return False

        wait_until(answers, timeout=15, what="the server to answer after the slow clients "
                                             "timed out")
    finally:
        for sock in slow:
            sock.close()
        server.shutdown()
        server.server_close()
    assert "Traceback" not in capsys.readouterr().err


def test_a_redis_outage_during_train_says_what_failed(worker, fake_slack, database):
    from schemas.settings import get_settings
    from workers.queue.app import celery_config

    dead = Celery("trainops-dead-broker")
    dead.conf.update(celery_config(get_settings()))
    dead.conf.broker_url = "redis://127.0.0.1:1/0"
    bot, server = make_bot(dead, fake_slack, database)
    try:
        before = len(list_jobs(database, limit=1000))
        answer = bot.command(SMALL)
        assert answer["response_type"] == "ephemeral"
        assert "Could not reach trainops' job queue (Redis)" in answer["text"]
        assert f"/train {SMALL}" in answer["text"]  # the exact command to send again
        assert "Something went wrong" not in answer["text"]
        assert len(list_jobs(database, limit=1000)) == before
    finally:
        server.shutdown()
        server.server_close()
