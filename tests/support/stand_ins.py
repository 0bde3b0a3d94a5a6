"""What stands in for the parts of AWS that moto does not play: the launched machine itself (the
agent as a local process, started when moto shows the instance), its metadata service with the
spot notice (IMDSv2 on loopback), the spot reclaim's state reason, and spot prices (moto answers
$0.00001/h for every type, so the market price is put in at our two readers of
DescribeSpotPriceHistory)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SPOT_USD = {"p5.48xlarge": Decimal("17.60")}  # the catalog's spot price for the type
RECLAIM = "Server.SpotInstanceTermination"


class FakeImds:
    """IMDSv2 for one machine: a token, then 404 on spot/instance-action until `notice()`."""

    def __init__(self):
        self.action: dict | None = None
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_PUT(self):
                self._send(200, b"token-e2e") if self.path == "/latest/api/token" \
                    else self._send(404, b"")

            def do_GET(self):
                if self.headers.get("X-aws-ec2-metadata-token") != "token-e2e":
                    self._send(401, b"")
                elif self.path.endswith("/spot/instance-action") and imds.action:
                    self._send(200, json.dumps(imds.action).encode())
                else:
                    self._send(404, b"")

            def _send(self, status: int, body: bytes):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def notice(self) -> None:
        """AWS's two-minute warning (the agent polls every notice_poll_s)."""
        self.action = {"action": "terminate",
                       "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclasses.dataclass
class Machine:
    instance_id: str
    job_id: str
    attempt: int
    imds: FakeImds
    proc: subprocess.Popen


class Fleet:
    """Watches moto for instances tagged trainops:job and boots each one: runs the agent on the
    spec its user-data names (here: the job's spec.json in the store), with its own IMDS."""

    def __init__(self, bucket: str, workdir: Path):
        self.bucket, self.workdir = bucket, workdir
        self.machines: dict[str, Machine] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="fleet", daemon=True)

    def start(self) -> Fleet:
        self._thread.start()
        return self

    def _watch(self) -> None:
        import boto3

        ec2 = boto3.client("ec2", region_name="us-east-1")
        while not self._stop.is_set():
            pages = ec2.get_paginator("describe_instances").paginate(Filters=[
                {"Name": "tag-key", "Values": ["trainops:job"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]}])
            for page in pages:
                for r in page["Reservations"]:
                    for inst in r["Instances"]:
                        if inst["InstanceId"] not in self.machines:
                            self._boot(inst)
            self._stop.wait(0.3)

    def _boot(self, inst: dict) -> None:
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        job_id, attempt = tags["trainops:job"], int(tags["trainops:attempt"])
        imds = FakeImds()
        env = dict(os.environ, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url,
                   TRAINOPS_WORKDIR=str(self.workdir / f"{job_id}-{attempt}"))
        log = open(self.workdir / f"agent-{job_id}-{attempt}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "training.agent", "--spec",
             f"s3://{self.bucket}/store/jobs/{job_id}/spec.json"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self.machines[inst["InstanceId"]] = Machine(inst["InstanceId"], job_id, attempt, imds,
                                                    proc)

    def of(self, attempt: int) -> Machine | None:
        return next((m for m in self.machines.values() if m.attempt == attempt), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for m in self.machines.values():
            if m.proc.poll() is None:
                m.proc.kill()
                m.proc.wait(10)
            m.imds.stop()


def market_prices(monkeypatch) -> None:
    """Both readers of DescribeSpotPriceHistory (the quote's and the meter's) see moto's
    answer with the market's price for the types in SPOT_USD."""
    from workers.providers.aws import AwsProvider
    from workers.quoting import prices

    read_spot = prices._read_spot

    def quoted(types, region):
        found = read_spot(types, region)
        return {t: (float(SPOT_USD[t]), zone) if t in SPOT_USD else (p, zone)
                for t, (p, zone) in found.items()}

    history = AwsProvider.spot_price_history

    def metered(self, pairs, since):
        found = history(self, pairs, since)
        return {k: [(at, SPOT_USD.get(k[0], p)) for at, p in points]
                for k, points in found.items()}

    monkeypatch.setattr(prices, "_read_spot", quoted)
    monkeypatch.setattr(AwsProvider, "spot_price_history", metered)
    prices.clear_cache()


def reclaims(monkeypatch) -> set[str]:
    """Instances in the returned set read as reclaimed by AWS (the state reason EC2 gives a spot
    instance it took back; moto's terminate says the user shut it down)."""
    from workers.providers import aws

    reclaimed: set[str] = set()
    machine = aws.machine_of

    def described(inst: dict):
        m = machine(inst)
        if m.instance_id in reclaimed and m.state == "terminated":
            return dataclasses.replace(m, state_reason=f"{RECLAIM}: Spot instance termination")
        return m

    monkeypatch.setattr(aws, "machine_of", described)
    return reclaimed
