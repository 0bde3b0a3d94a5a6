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

from schemas.job import Control, JobSpec
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
        from schemas.checkpoints import manifested_steps

        return manifested_steps(self.store, self.prefix)

    def wait_training(self, timeout: float = 60, min_step: int = 1) -> dict:
        """Until progress.json shows the train phase at min_step or later (a hang's deadline:
        tests/support/waiting.py)."""
        from tests.support.waiting import deadline_s

        deadline = time.monotonic() + deadline_s(timeout)
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


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (Linux /proc), direct children only."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        kids += [int(x) for x in task.read_text().split()]
    return kids


def interrupt_frozen(job: Job, agent: subprocess.Popen, workdir: Path, timeout: float = 120) -> None:
    """Interrupt the attempt at a step the test chooses, whatever the machine's speed: freeze the
    stage's process group (SIGSTOP), write control.json's interrupt, wait until the agent has
    relayed it into the stage's local control file, then thaw the stage (SIGCONT). The frozen
    stage can finish at most the step it was in before it reads the reason."""
    import signal

    from tests.support.waiting import deadline_s

    groups = {os.getpgid(pid) for pid in children(agent.pid)}
    assert groups, "the agent has no stage process to freeze"
    for group in groups:
        os.killpg(group, signal.SIGSTOP)
    try:
        job.control(interrupt=True)
        deadline = time.monotonic() + deadline_s(timeout)
        while True:
            relayed = [p for p in workdir.rglob("control.json")
                       if '"interrupted"' in p.read_text(errors="replace")]
            if relayed:
                return
            assert agent.poll() is None, "the agent ended while its stage was frozen"
            assert time.monotonic() < deadline, f"waited {timeout} s for the agent to relay the interrupt"
            time.sleep(0.05)
    finally:
        for group in groups:
            os.killpg(group, signal.SIGCONT)


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
