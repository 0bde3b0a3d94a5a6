"""Slash-command ack latency: N concurrent signed `/train` commands against the real HTTP
endpoint of `trainops serve` (the threaded stdlib server + Bolt), each enqueuing its quote task on
the real Redis. Prints p50/p90/p99 of the time from sending a request to its full response.

    python benchmarks/slack_ack_bench.py [--concurrency 50] [--rounds 5] [--redis URL]

Slack gives an app 3 s to ack; the aim is p99 < 300 ms with 50 at once. The quote itself is not
timed (a worker does it later); the queue used here is purged at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "slack")]  # the fake Slack Web API lives there


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", default=os.environ.get("TRAINOPS_TEST_REDIS_URL",
                                                          "redis://127.0.0.1:6379") + "/7")
    args = parser.parse_args()

    from celery import Celery
    from fake_slack import FakeSlack
    from slack_sdk.signature import SignatureVerifier

    tmp = tempfile.mkdtemp(prefix="trainops-bench-")
    slack = FakeSlack().start()
    secret = secrets.token_hex(16)
    os.environ.update(SLACK_BOT_TOKEN="xoxb-" + secrets.token_hex(8), SLACK_SIGNING_SECRET=secret,
                      SLACK_API_URL=slack.api_url, TRAINOPS_DATABASE_URL=f"sqlite:///{tmp}/b.db",
                      TRAINOPS_BROKER_URL=args.redis, TRAINOPS_CONFIG=f"{tmp}/absent.toml")

    from bot.slack.app import build_app
    from bot.slack.serve import EVENTS_PATH, SlackHTTPServer
    from schemas.config import cached_config
    from schemas.db.database import get_database
    from schemas.settings import get_settings

    settings = get_settings()
    queue = Celery("bench", broker=args.redis)
    app = build_app(settings, cached_config(settings.config_path), get_database(settings),
                    celery=queue)
    server = SlackHTTPServer(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.port}{EVENTS_PATH}"
    verifier = SignatureVerifier(secret)

    def one(i: int, gate: threading.Barrier, out: list[float], failures: list[str]) -> None:
        body = urlencode({"command": "/train", "text": "sft reduced budget=100",
                          "user_id": f"U{i:05d}", "channel_id": "C0BENCH", "team_id": "T0",
                          "response_url": f"{slack.url}/response/{i}", "trigger_id": "x"})
        gate.wait()
        ts = str(int(time.time()))
        req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": verifier.generate_signature(timestamp=ts, body=body)})
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                ok = resp.status == 200 and b"Quoting" in resp.read()
        except Exception as exc:  # noqa: BLE001 - counted and printed
            failures.append(repr(exc))
            return
        out.append(time.perf_counter() - start)
        if not ok:
            failures.append("unexpected answer")

    one(0, threading.Barrier(1), [], [])  # warm-up: Bolt's first dispatch, Redis connection
    latencies: list[float] = []
    failures: list[str] = []
    for r in range(args.rounds):
        gate = threading.Barrier(args.concurrency)
        round_lat: list[float] = []
        threads = [threading.Thread(target=one, args=(i, gate, round_lat, failures))
                   for i in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        latencies += round_lat
        print(f"round {r + 1}: p50 {percentile(round_lat, 50) * 1000:.0f} ms, "
              f"p99 {percentile(round_lat, 99) * 1000:.0f} ms")
    server.shutdown()
    slack.stop()
    purged = queue.control.purge()
    ms = [x * 1000 for x in latencies]
    print(f"{len(ms)} acks ({args.concurrency} concurrent x {args.rounds} rounds), "
          f"{len(failures)} failures; {purged} queued quote tasks purged")
    print(f"p50 {percentile(ms, 50):.0f} ms  p90 {percentile(ms, 90):.0f} ms  "
          f"p99 {percentile(ms, 99):.0f} ms  max {max(ms):.0f} ms  "
          f"mean {statistics.mean(ms):.0f} ms")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
