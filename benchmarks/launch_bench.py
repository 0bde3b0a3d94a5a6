"""Launch benchmark: N jobs approved at once against moto's server (EC2 + S3), a real Celery
worker (threads pool, in this process so every AWS call can be counted) on the real Redis.

Prints: time from the first approval until every job is running, jobs/s, EC2 calls per job by
operation, and what one monitor tick over all the live attempts costs.

    python benchmarks/launch_bench.py [--jobs 200] [--concurrency 8] [--database URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.aws_calls import CALLS, count_aws_calls  # noqa: E402


def _own_schema(url: str) -> str:
    """A fresh `launch_bench` schema in a PostgreSQL database others may be using."""
    import sqlalchemy as sa

    if not url.startswith("postgresql"):
        return url
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS launch_bench CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA launch_bench"))
    engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3Dlaunch_bench"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads")
    parser.add_argument("--database", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/7")
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    work = Path(tempfile.mkdtemp(prefix="launch-bench-"))
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
        TRAINOPS_BROKER_URL=args.broker, TRAINOPS_PROVIDER="aws",
        TRAINOPS_STORE="s3://launch-bench/store",
        TRAINOPS_DATABASE_URL=_own_schema(args.database) if args.database
        else f"sqlite:///{work}/bench.db",
    )
    import logging

    import boto3
    import redis

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    boto3.client("s3").create_bucket(Bucket="launch-bench")
    os.environ["TRAINOPS_AWS_AMI"] = boto3.client("ec2").describe_images(
        Owners=["amazon"])["Images"][0]["ImageId"]
    redis.Redis.from_url(args.broker).delete("celery")

    from celery.contrib.testing.worker import start_worker

    import workers.queue.tasks  # noqa: F401
    from benchmarks.sample import sample_quote as quote
    from schemas.db.database import get_database
    from schemas.settings import get_settings
    from workers.monitor.tick import tick
    from workers.notify import RecordingNotifier
    from workers.queue.app import app
    from workers.state import jobs

    settings = get_settings()
    db = get_database(settings)
    ids = [jobs.open_job(db, quote(), f"U{i % 7}") for i in range(args.jobs)]
    count_aws_calls()
    with start_worker(app, pool="threads", concurrency=args.concurrency,
                      perform_ping_check=False, loglevel="ERROR"):
        t0 = time.monotonic()
        approve_s = []

        def approve(job_id):
            started = time.monotonic()
            out = jobs.decide(db, job_id, "UBOSS", "approve", frozenset({"UBOSS"}))
            approve_s.append(time.monotonic() - started)
            return out.ok

        with ThreadPoolExecutor(max_workers=20) as pool:
            assert all(pool.map(approve, ids))
        approved_at = time.monotonic() - t0
        while True:
            live = [j for j in jobs.list_jobs(db, limit=args.jobs) if j.status == "running"]
            if len(live) == args.jobs:
                break
            failed = [j for j in jobs.list_jobs(db, limit=args.jobs) if j.status == "failed"]
            if failed:
                print("failed:", failed[0].job_id, failed[0].events[-1]["message"])
                return 1
            time.sleep(0.2)
        all_running = time.monotonic() - t0
    launch_calls = Counter(CALLS)
    CALLS.clear()
    tick_t = time.monotonic()
    tick(db, settings, RecordingNotifier())
    tick_s = time.monotonic() - tick_t

    pages = boto3.client("ec2").get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag-key", "Values": ["trainops:job"]}])
    instances = sum(len(r["Instances"]) for page in pages for r in page["Reservations"])
    ec2 = {op: n for (svc, op), n in launch_calls.items() if svc == "ec2"}
    print(f"jobs: {args.jobs}, worker threads: {args.concurrency}, database: "
          f"{settings.database_url.split(':')[0]}")
    print(f"approvals done after {approved_at:.2f} s (median decide {statistics.median(approve_s) * 1000:.0f} ms)")
    print(f"all {args.jobs} running after {all_running:.2f} s "
          f"({args.jobs / all_running:.1f} launches/s); instances in moto: {instances}")
    print(f"EC2 calls per job: {sum(ec2.values()) / args.jobs:.2f}  "
          + ", ".join(f"{op} {n / args.jobs:.2f}" for op, n in sorted(ec2.items())))
    other = {f"{svc}:{op}": n for (svc, op), n in launch_calls.items() if svc != "ec2"}
    print(f"other AWS calls (total): {other}")
    tick_calls = {f"{svc}:{op}": n for (svc, op), n in CALLS.items()}
    print(f"one monitor tick over {args.jobs} live attempts: {tick_s:.2f} s, AWS calls {tick_calls}")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
