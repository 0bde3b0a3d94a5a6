"""Monitor benchmark: one monitor tick over N live AWS jobs against moto's server (EC2 + S3).

N spot instances are launched in moto (in batches), N running jobs with their attempts are
written to a fresh SQLite (or --database) and each job gets a progress.json in the S3 store,
written the way the agent writes it (the document and its heartbeats/ copy). Then the real
`workers.monitor.tick.tick` runs several times. Prints the wall time of each tick (the first
reads the spot price history, writes every agent's deadline and reads every document; later ones
use the caches) and the AWS calls per tick by operation: the aim is a median under 2 s, at most
one DescribeInstances per 1,000 instances, and S3 GETs only for documents that changed.

With --rewrite, every agent rewrites its progress.json before each tick (the worst case: agents
that write every 30 s under a 30 s tick), so every tick GETs every job's progress once.

With --restart, a first untimed tick plays the previous monitor process (it posts the progress
cards and writes every control.json), then the in-process caches are dropped: tick 1 is then the
first tick of a restarted worker, over jobs that already have their documents.

A restarted worker loads the memo the last tick saved in the store (workers/monitor/memo.py), so
its first tick reads and writes only what changed; --no-memo measures it without (as before).

With --interval S, a tick starts every S seconds, as Celery beat starts them (default: one after
another). At the real 30 s the deadline refresh shows: each job's control.json is rewritten once
per refresh window (workers/monitor/control.py), spread over the ticks.

With --job-role, per-job store credentials are on (schemas/credentials.py): the first tick
issues every machine's (STS AssumeRole and a PUT each, 16 at a time); with --restart, the new
process reads their expiry back from the store instead (a GET each) and issues none.

Besides the AWS calls, each tick prints the control.json deadlines it wrote and the spend_entries
rows it inserted, updated and deleted (metering writes only the lines that changed).

    python benchmarks/monitor_bench.py [--jobs 1000] [--ticks 5] [--rewrite] [--restart [--no-memo]]
                                       [--interval S] [--job-role]
                                       [--database URL]

The capped local end-to-end run's overshoot is printed by
`python -m pytest -s tests/guard/test_e2e_local.py -k warning_then_stop`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.aws_calls import CALLS, count_aws_calls  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--rewrite", action="store_true",
                        help="every agent rewrites its progress before each tick")
    parser.add_argument("--database", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--restart", action="store_true",
                        help="first a tick by 'the previous process', then the monitor's "
                        "in-process caches are dropped, as a restarted worker starts")
    parser.add_argument("--no-memo", action="store_true",
                        help="the monitor saves and loads no memo (workers/monitor/memo.py): "
                        "a restarted worker starts from nothing, as before the memo")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds from one tick's start to the next (default: back to back)")
    parser.add_argument("--job-role", action="store_true",
                        help="per-job store credentials (TRAINOPS_AWS_JOB_ROLE): the first tick "
                        "issues every machine's; with --restart the new process reads their "
                        "expiry back from the store")
    parser.add_argument("--profile", type=int, nargs="?", const=-1, default=None,
                        metavar="TICK", help="print where a tick's time went (cProfile, top 25; "
                        "default: the last tick)")
    args = parser.parse_args()

    # moto in its own process: in this one it would share the GIL with the tick it serves.
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://{host}:{port}/moto-api/").read()
            break
        except OSError:
            time.sleep(0.1)
    tmp = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    os.environ.update({
        "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
        "TRAINOPS_PROVIDER": "aws", "TRAINOPS_STORE": "s3://monitor-bench/store",
        "TRAINOPS_DATABASE_URL": args.database or f"sqlite:///{tmp}/bench.db",
        "TRAINOPS_CONFIG": str(tmp / "none.toml"), "TRAINOPS_PROGRESS_EVERY": "100000",
    })
    from datetime import timedelta

    import boto3

    from benchmarks.sample import sample_quote as quote
    from schemas.db.database import Database, upgrade
    from schemas.db.tables import Attempt, Job, QuoteRecord
    from schemas.job import Progress
    from schemas.settings import get_settings
    from schemas.spec import utcnow
    from schemas.store import job_prefix, open_store, write_agent_doc
    from workers.monitor.tick import tick
    from workers.notify import RecordingNotifier
    from workers.providers.aws import AwsProvider

    if args.job_role:
        os.environ.update(job_roles())
    settings = get_settings()
    upgrade(settings.database_url)
    db = Database(settings.database_url)
    boto3.client("s3").create_bucket(Bucket="monitor-bench")
    ec2 = boto3.client("ec2")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    store = open_store(settings.store)
    q = quote()
    started = time.perf_counter()
    instances = []
    for _ in range(0, args.jobs, 100):
        n = min(100, args.jobs - len(instances))
        reply = ec2.run_instances(ImageId=ami, InstanceType="g5.xlarge", MinCount=n, MaxCount=n,
                                  Placement={"AvailabilityZone": "us-east-1a"},
                                  InstanceMarketOptions={"MarketType": "spot"})
        instances += [i["InstanceId"] for i in reply["Instances"]]
    now = utcnow()
    with db.session() as s:
        for k, instance_id in enumerate(instances):
            job_id = f"j-b{k:05d}"
            s.add(Job(id=job_id, status="running", requester="UBENCH", request=q.request.model_dump(
                mode="json"), provider="aws", budget_usd=100, cap_usd=100, warn=0.8,
                created_at=now, updated_at=now))
            s.flush()
            s.add(QuoteRecord(job_id=job_id, payload=q.model_dump(mode="json"),
                              options=[o.model_dump(mode="json") for o in q.options]))
            s.add(Attempt(job_id=job_id, attempt=1, provider="aws", instance_id=instance_id,
                          instance_type="g5.xlarge", zone="us-east-1a", market="spot",
                          hourly_usd=0.4, launched_at=now - timedelta(hours=1)))
    def agents_write(step: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        def one(k):
            write_agent_doc(store, job_prefix(f"j-b{k:05d}"), "progress.json",
                            Progress(phase="train", step=step, total_steps=100, loss=2.0,
                                     eta_s=600.0))

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, range(len(instances))))

    agents_write(10)
    print(f"setup: {len(instances)} instances, jobs and progress files in "
          f"{time.perf_counter() - started:.1f} s")

    if args.no_memo:
        from workers.monitor import memo

        memo.warm = memo.keep = lambda *args, **kwargs: False
    count_aws_calls()
    rows = count_spend_rows(db)
    provider = AwsProvider(settings)
    if args.restart:
        t0 = time.perf_counter()
        tick(db, settings, RecordingNotifier(), providers={"aws": provider})
        print(f"the previous process's tick: {time.perf_counter() - t0:.2f} s; "
              "now a new process (its caches empty)")
        restart()
        if args.job_role:  # the per-job credentials' expiries live in the provider
            provider = AwsProvider(settings)
    times = []
    for i in range(args.ticks):
        if args.interval and i:
            time.sleep(max(0.0, args.interval - times[-1]))
        if args.rewrite and i:
            agents_write(10 + i)
        CALLS.clear()
        rows.clear()
        profiler = None
        if args.profile is not None and i == (args.profile - 1) % args.ticks:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        t0 = time.perf_counter()
        counts = tick(db, settings, RecordingNotifier(), providers={"aws": provider})
        times.append(time.perf_counter() - t0)
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        calls = ", ".join(f"{op} {n}" for (_svc, op), n in sorted(CALLS.items()))
        spend_rows = ", ".join(f"{op} {n}" for op, n in sorted(rows.items())) or "none"
        print(f"tick {i + 1}: {times[-1]:.2f} s  attempts={counts['attempts']} "
              f"metered={counts['metered']} deadlines={counts.get('deadlines', '?')}  "
              f"calls: {calls}  spend rows: {spend_rows}")
    later = times[1:] or times
    print(f"first tick over {len(instances)} live jobs: {times[0]:.2f} s; median of ticks 2..n: "
          f"{statistics.median(later):.2f} s (aim < 2 s); last tick: "
          f"DescribeInstances {CALLS[('ec2', 'DescribeInstances')]} "
          f"(aim <= {max(1, -(-len(instances) // 1000))}), S3 LIST "
          f"{CALLS[('s3', 'ListObjectsV2')]}, GET {CALLS[('s3', 'GetObject')]}"
          f"{' (rewrite: every job changed)' if args.rewrite else ''}")
    server.terminate()
    server.wait(10)
    return 0


def job_roles() -> dict[str, str]:
    """The instance role in its profile and the job role, in moto: the settings that turn
    per-job credentials on (schemas/credentials.py)."""
    import json

    import boto3

    iam = boto3.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})
    iam.create_role(RoleName="bench-agent", AssumeRolePolicyDocument=trust)
    iam.create_instance_profile(InstanceProfileName="bench-agent")
    iam.add_role_to_instance_profile(InstanceProfileName="bench-agent", RoleName="bench-agent")
    job = iam.create_role(RoleName="bench-job", AssumeRolePolicyDocument=trust)["Role"]
    return {"TRAINOPS_AWS_INSTANCE_PROFILE": "bench-agent", "TRAINOPS_AWS_JOB_ROLE": job["Arn"]}


def restart() -> None:
    """Drop what a monitor process keeps in memory (what it read, wrote and priced); the new
    process loads the memo the previous one saved in the store, unless --no-memo."""
    from workers.monitor import control, memo, reads, spend

    memo.forget()
    reads.forget()
    control._written.clear()
    spend._history.clear()


def count_spend_rows(db):
    """spend_entries rows inserted, updated and deleted (the database's own row counts)."""
    from collections import Counter

    import sqlalchemy as sa

    rows: Counter = Counter()

    @sa.event.listens_for(db.engine, "after_cursor_execute")
    def counted(conn, cursor, statement, parameters, context, executemany):
        kind = statement.lstrip().split(None, 1)[0]
        if kind in ("INSERT", "UPDATE", "DELETE") and "spend_entries" in statement.split(
                "WHERE")[0]:
            rows[kind] += max(cursor.rowcount, 0)

    return rows


if __name__ == "__main__":
    raise SystemExit(main())
