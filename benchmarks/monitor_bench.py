"""Monitor benchmark: one monitor tick over N live AWS jobs against moto's server (EC2 + S3).

N spot instances are launched in moto (in batches), N running jobs with their attempts are
written to a fresh SQLite (or --database) and each job gets a progress.json in the S3 store.
Then the real `workers.monitor.tick` runs several times. Prints the wall time of each tick
(the first reads the spot price history, later ones use the cache) and the AWS calls per tick
by operation: the aim is under 2 s and at most one DescribeInstances per 1,000 instances.

    python benchmarks/monitor_bench.py [--jobs 1000] [--ticks 3] [--database URL]

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
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument("--database", default=None, help="default: a fresh SQLite file")
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
    import boto3

    from schemas.db import Database, upgrade
    from schemas.settings import get_settings
    from schemas.spec import Progress, utcnow
    from schemas.store import job_prefix, open_store, write_model
    from schemas.tables import Attempt, Job, QuoteRecord
    from tests.runner.factories import quote
    from workers import monitor
    from workers.notify import RecordingNotifier
    from workers.providers.aws import AwsProvider

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
                          hourly_usd=0.4, launched_at=now))
    for k in range(len(instances)):
        write_model(store, f"{job_prefix(f'j-b{k:05d}')}/progress.json",
                    Progress(phase="train", step=10, total_steps=100, loss=2.0, eta_s=600.0))
    print(f"setup: {len(instances)} instances, jobs and progress files in "
          f"{time.perf_counter() - started:.1f} s")

    count_aws_calls()
    provider = AwsProvider(settings)
    times = []
    for i in range(args.ticks):
        CALLS.clear()
        t0 = time.perf_counter()
        counts = monitor.tick(db, settings, RecordingNotifier(), providers={"aws": provider})
        times.append(time.perf_counter() - t0)
        calls = ", ".join(f"{op} {n}" for (_svc, op), n in sorted(CALLS.items()))
        print(f"tick {i + 1}: {times[-1]:.2f} s  attempts={counts['attempts']} "
              f"metered={counts['metered']}  calls: {calls}")
    print(f"median tick over {len(instances)} live jobs: {statistics.median(times):.2f} s "
          f"(aim < 2 s); DescribeInstances per tick: "
          f"{CALLS[('ec2', 'DescribeInstances')]} (aim <= {max(1, -(-len(instances) // 1000))})")
    server.terminate()
    server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
