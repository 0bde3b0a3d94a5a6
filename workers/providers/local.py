"""This machine as a provider: the agent runs as a detached subprocess.

The embedded default (no AWS needed) and a team's own GPU box. A "machine" is one agent process,
instance id `local-<pid>`, recorded in a small registry file so another worker process (or the
reaper) can find it. Liveness is the pid plus its command line, so a recycled pid is not
mistaken for our agent. The price per hour is TRAINOPS_LOCAL_PRICE_PER_HOUR (default 0).

Security (issue #14, docs/security.md): the agent gets an allow-listed environment, never the
worker's; it runs under a small shell that records when it exited (the meter bills to that
moment); and its environment carries the attempt's launch key, job, attempt and this registry,
so an agent a crashed worker never recorded is found (adopted by the next provision, or reaped).
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
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

from schemas.settings import Settings, environment, environment_value
from schemas.spec import utcnow
from training.agent.env import agent_env
from workers.providers.base import LaunchRequest, Machine
from workers.rules.budget import usd

log = logging.getLogger(__name__)
AGENT_MODULE = "training.agent"


def registry_dir(settings: Settings) -> Path:
    parsed = urlparse(settings.store)
    if parsed.scheme in ("file", ""):
        root = Path((parsed.netloc or "") + parsed.path).resolve()
        return root / ".local-instances"
    return Path.home() / ".cache" / "trainops" / "local-instances"


def _launch_key_of(pid: int) -> dict[str, str] | None:
    """The TRAINOPS_LAUNCH_* an agent process was started with (its /proc environ), if any."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (OSError, ProcessLookupError):
        return None
    pairs = dict(p.split(b"=", 1) for p in raw.split(b"\0") if b"=" in p)
    key = pairs.get(b"TRAINOPS_LAUNCH_KEY")
    if key is None:
        return None
    return {"key": key.decode(), "job_id": pairs.get(b"TRAINOPS_LAUNCH_JOB", b"").decode(),
            "attempt": pairs.get(b"TRAINOPS_LAUNCH_ATTEMPT", b"0").decode(),
            "registry": pairs.get(b"TRAINOPS_LAUNCH_REGISTRY", b"").decode()}


def _agent_pids() -> list[int]:
    out = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if AGENT_MODULE.encode() in (entry / "cmdline").read_bytes():
                out.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return out


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


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


def agent_python_path() -> str:
    """The agent's code: this checkout (the local "bundle"), ahead of whatever else."""
    import training

    root = str(Path(training.__file__).resolve().parent.parent)
    rest = environment_value("PYTHONPATH") or ""
    return root + (os.pathsep + rest if rest else "")


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
            stopped_at=None if alive else self._exited_at(rec),
        )

    def _exited_at(self, rec: dict) -> datetime | None:
        """When the agent process ended: the time the wrapper shell wrote as it exited (a
        process killed with its shell has none: the caller falls back to what it knows)."""
        try:
            stamp = float(self._exit_file(rec.get("key", "")).read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return None
        return datetime.fromtimestamp(stamp, UTC)

    def _exit_file(self, key: str) -> Path:
        return self.dir / f"{key or 'unknown'}.exit"

    def _write_record(self, rec: dict) -> None:
        tmp = self.dir / f".{rec['instance_id']}.tmp"
        tmp.write_text(json.dumps(rec))
        tmp.replace(self.dir / f"{rec['instance_id']}.json")

    def adopt_unrecorded(self) -> list[dict]:
        """Agents running without a record (a worker killed between the start and the record):
        found by the launch key in their environment, recorded now so they are seen, metered
        and reaped like any other machine."""
        known = {r["pid"] for r in self._records()}
        adopted = []
        for pid in _agent_pids():
            # Group leaders only: the recorded pid is the wrapper shell that leads the group,
            # and the agent under it must not count as a second machine.
            if pid in known or not _alive(pid) or _group_of(pid) != pid:
                continue
            launch = _launch_key_of(pid)
            # Only this deployment's agents (another store on the same host has its own).
            if launch is None or not launch["job_id"] or launch["registry"] != str(self.dir):
                continue
            rec = {"instance_id": f"local-{pid}", "pid": pid, "job_id": launch["job_id"],
                   "attempt": int(launch["attempt"] or 0), "key": launch["key"],
                   "launched_at": datetime.fromtimestamp(
                       Path(f"/proc/{pid}").stat().st_mtime, UTC).isoformat(),
                   "log": str(self.dir / f"{launch['job_id']}-{launch['attempt']}.log")}
            self.dir.mkdir(parents=True, exist_ok=True)
            self._write_record(rec)
            log.warning("adopted unrecorded agent %s of %s", rec["instance_id"], rec["job_id"])
            adopted.append(rec)
        return adopted

    def find(self, job_id: str, attempt: int | None = None) -> list[Machine]:
        self.adopt_unrecorded()
        machines = [self._machine(r) for r in self._records() if r["job_id"] == job_id
                    and (attempt is None or r["attempt"] == attempt)]
        return [m for m in machines if m.live]

    def launch(self, request: LaunchRequest) -> Machine:
        # Always look, even when the caller reconciled: a process this host started for the
        # same attempt (same key) before a crash is adopted, never started a second time.
        existing = self.find(request.job_id, request.attempt)
        if existing:
            return existing[0]
        self.dir.mkdir(parents=True, exist_ok=True)
        log_path = self.dir / f"{request.job_id}-{request.attempt}.log"
        key = request.client_token or f"{request.job_id}-{request.attempt}"
        # Only what the agent needs (training/agent/env.py): none of the worker's secrets.
        # Never TRAINOPS_POWER_OFF_AT_DEADLINE: the host machine must not power off.
        env = agent_env(environment(), self.settings.store, PYTHONPATH=agent_python_path(),
                        TRAINOPS_LAUNCH_KEY=key, TRAINOPS_LAUNCH_JOB=request.job_id,
                        TRAINOPS_LAUNCH_ATTEMPT=str(request.attempt),
                        TRAINOPS_LAUNCH_REGISTRY=str(self.dir))
        with open(log_path, "ab") as log_file:
            # A shell that ignores SIGTERM waits for the agent and writes when it exited: the
            # meter bills up to that moment, not up to when a monitor noticed.
            proc = subprocess.Popen(
                ["/bin/sh", "-c", 'trap "" TERM; "$0" -m ' + AGENT_MODULE + ' --spec "$1"; '
                 'echo "$? $(date +%s.%N)" > "$2.tmp" && mv "$2.tmp" "$2"',
                 sys.executable, request.spec_uri, str(self._exit_file(key))],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=os.getcwd(),
            )
        instance_id = f"local-{proc.pid}"
        rec = {"instance_id": instance_id, "pid": proc.pid, "job_id": request.job_id,
               "attempt": request.attempt, "key": key, "launched_at": utcnow().isoformat(),
               "log": str(log_path)}
        self._write_record(rec)
        return self._machine(rec)

    def describe(self, instance_ids: Iterable[str]) -> dict[str, Machine]:
        wanted = set(instance_ids)
        return {r["instance_id"]: self._machine(r) for r in self._records()
                if r["instance_id"] in wanted}

    def list_tagged(self) -> list[Machine]:
        self.adopt_unrecorded()  # agents a crashed worker never recorded are reaped too
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
