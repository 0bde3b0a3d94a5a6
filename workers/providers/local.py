"""This machine as a provider: the agent runs as a detached subprocess.

The embedded default (no AWS needed) and a team's own GPU box. A "machine" is one agent process,
instance id `local-<pid>`, recorded in a small registry file so another worker process (or the
reaper) can find it. Liveness is the pid plus its command line, so a recycled pid is not
mistaken for our agent. The price per hour is TRAINOPS_LOCAL_PRICE_PER_HOUR (default 0).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

from schemas.settings import Settings
from schemas.spec import utcnow
from workers.budget import usd
from workers.providers.base import LaunchRequest, Machine

log = logging.getLogger(__name__)
AGENT_MODULE = "training.agent"


def registry_dir(settings: Settings) -> Path:
    parsed = urlparse(settings.store)
    if parsed.scheme in ("file", ""):
        root = Path((parsed.netloc or "") + parsed.path).resolve()
        return root / ".local-instances"
    return Path.home() / ".cache" / "trainops" / "local-instances"


def _alive(pid: int) -> bool:
    """Our agent is still running as `pid` (not a zombie, not a recycled pid)."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child and has exited
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and AGENT_MODULE in cmdline


class LocalProvider:
    name = "local"

    def __init__(self, settings: Settings, grace_s: float = 10.0):
        self.settings = settings
        self.grace_s = grace_s
        self.dir = registry_dir(settings)

    def zones(self, region: str) -> list[str | None]:
        return [None]

    def hourly_usd(self, instance_type: str, market: str, quoted_usd: float) -> Decimal:
        return usd(self.settings.local_price_per_hour)

    def precheck(self, instance_type: str, market: str) -> None:
        return None  # no account limits on one's own machine

    def _records(self) -> list[dict]:
        if not self.dir.exists():
            return []
        out = []
        for path in sorted(self.dir.glob("local-*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):
                log.warning("unreadable local instance record %s", path)
        return out

    def _machine(self, rec: dict) -> Machine:
        alive = _alive(rec["pid"])
        return Machine(
            instance_id=rec["instance_id"], state="running" if alive else "terminated",
            instance_type="local", zone=None, market="local", job_id=rec["job_id"],
            attempt=rec["attempt"], launched_at=datetime.fromisoformat(rec["launched_at"]),
            state_reason=None if alive else "exited",
        )

    def find(self, job_id: str, attempt: int | None = None) -> list[Machine]:
        machines = [self._machine(r) for r in self._records() if r["job_id"] == job_id
                    and (attempt is None or r["attempt"] == attempt)]
        return [m for m in machines if m.live]

    def launch(self, request: LaunchRequest) -> Machine:
        existing = [] if request.reconciled else self.find(request.job_id, request.attempt)
        if existing:
            return existing[0]
        self.dir.mkdir(parents=True, exist_ok=True)
        log_path = self.dir / f"{request.job_id}-{request.attempt}.log"
        env = dict(os.environ)
        env.pop("TRAINOPS_POWER_OFF_AT_DEADLINE", None)  # never power off the host machine
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", AGENT_MODULE, "--spec", request.spec_uri],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=os.getcwd(),
            )
        rec = {"instance_id": f"local-{proc.pid}", "pid": proc.pid, "job_id": request.job_id,
               "attempt": request.attempt, "launched_at": utcnow().isoformat(),
               "log": str(log_path)}
        tmp = self.dir / f".{rec['instance_id']}.tmp"
        tmp.write_text(json.dumps(rec))
        tmp.replace(self.dir / f"{rec['instance_id']}.json")
        return self._machine(rec)

    def describe(self, instance_ids: Iterable[str]) -> dict[str, Machine]:
        wanted = set(instance_ids)
        return {r["instance_id"]: self._machine(r) for r in self._records()
                if r["instance_id"] in wanted}

    def list_tagged(self) -> list[Machine]:
        return [m for m in (self._machine(r) for r in self._records()) if m.live]

    def terminate(self, instance_ids: Iterable[str]) -> None:
        """SIGTERM to the agent's process group (it checkpoints and exits), then SIGKILL."""
        records = {r["instance_id"]: r for r in self._records()}
        for instance_id in sorted(set(instance_ids)):
            rec = records.get(instance_id)
            if rec is None or not _alive(rec["pid"]):
                continue
            self._signal(rec["pid"], signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s
            while _alive(rec["pid"]) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(rec["pid"]):
                self._signal(rec["pid"], signal.SIGKILL)
                deadline = time.monotonic() + 5
                while _alive(rec["pid"]) and time.monotonic() < deadline:
                    time.sleep(0.05)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # start_new_session made the agent its group's leader
        except ProcessLookupError:
            pass
