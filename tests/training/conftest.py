"""Fixtures for the training agent's tests: jobs in a store, the agent as a real subprocess, and
a fake instance-metadata service on loopback (spot notices can't be produced any other way)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from schemas.spec import Control, JobSpec
from schemas.store import open_store, write_model

REPO = Path(__file__).resolve().parents[2]
FAST = dict(model="tiny", seq_len=64, batch_size=2, heartbeat_s=0.3, notice_poll_s=0.2)


@pytest.fixture(scope="session")
def token_cache(tmp_path_factory):
    """One tokenised-data cache for the session (the cache is keyed, so sharing is safe)."""
    return tmp_path_factory.mktemp("token-cache")


@pytest.fixture(autouse=True)
def agent_env(monkeypatch, token_cache):
    monkeypatch.setenv("TRAINOPS_CACHE_DIR", str(token_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Nothing listens here: no spot notices unless a test serves a fake IMDS.
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


class Job:
    def __init__(self, store_uri: str, job_id: str, **fields):
        self.store = open_store(store_uri)
        self.prefix = f"jobs/{job_id}"
        self.spec = JobSpec(job_id=job_id, store_uri=f"{store_uri}/{self.prefix}", **{**FAST, **fields})
        self.uri = f"{store_uri}/{self.prefix}/spec.json"
        self.write_spec()

    def write_spec(self, **changes) -> None:
        self.spec = self.spec.model_copy(update=changes)
        write_model(self.store, f"{self.prefix}/spec.json", self.spec)

    def read(self, name: str):
        blob = self.store.read_bytes(f"{self.prefix}/{name}")
        return None if blob is None else json.loads(blob)

    def control(self, **fields) -> None:
        write_model(self.store, f"{self.prefix}/control.json", Control(**fields))

    def metrics(self, attempt: int) -> dict[int, float]:
        blob = self.store.read_bytes(f"{self.prefix}/logs/metrics-attempt-{attempt}.jsonl") or b""
        return {row["step"]: row["loss"] for row in map(json.loads, blob.decode().splitlines())}

    def log(self, attempt: int = 1) -> str:
        return (self.store.read_bytes(f"{self.prefix}/logs/attempt-{attempt}.log") or b"").decode()

    def manifests(self) -> list[int]:
        from training.sync import manifested_steps

        return manifested_steps(self.store, self.prefix)

    def wait_training(self, timeout: float = 60, min_step: int = 1) -> dict:
        """Until progress.json shows the train phase at min_step or later."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            progress = self.read("progress.json")
            if progress and progress["phase"] in ("train", "checkpoint") and progress["step"] >= min_step:
                return progress
            time.sleep(0.1)
        raise AssertionError(f"no training within {timeout} s: {self.read('progress.json')}")


@pytest.fixture
def file_store(tmp_path):
    return f"file://{tmp_path / 'store'}"


def start_agent(job: Job, workdir: Path, **env) -> subprocess.Popen:
    """`python -m training.agent` as the GPU machine runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "training.agent", "--spec", job.uri, "--workdir", str(workdir)],
        cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


class FakeImds:
    """IMDSv2 on loopback: a token, then 404 until `notice()` (or `rebalance()`)."""

    def __init__(self):
        self.action: dict | None = None
        self.rebalance_doc: dict | None = None
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_PUT(self):
                fake.requests.append(f"PUT {self.path}")
                ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                self._send(200 if ok else 400, b"fake-token" if ok else b"")

            def do_GET(self):
                fake.requests.append(f"GET {self.path}")
                if self.headers.get("X-aws-ec2-metadata-token") != "fake-token":
                    return self._send(401, b"")
                doc = {"/latest/meta-data/spot/instance-action": fake.action,
                       "/latest/meta-data/events/recommendations/rebalance": fake.rebalance_doc}.get(self.path)
                self._send(404, b"") if doc is None else self._send(200, json.dumps(doc).encode())

            def _send(self, code, body):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def notice(self) -> None:
        self.action = {"action": "terminate", "time": "2030-01-01T00:02:00Z"}

    def rebalance(self) -> None:
        self.rebalance_doc = {"noticeTime": "2030-01-01T00:00:00Z"}


@pytest.fixture
def fake_imds():
    imds = FakeImds()
    yield imds
    imds.server.shutdown()
