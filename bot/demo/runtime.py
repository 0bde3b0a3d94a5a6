"""The demo's machinery: a working folder, the environment that points trainops at it, and the
Celery worker (with beat embedded) as a child process whose stdout carries the conversation.

Nothing here needs Redis, PostgreSQL, Slack or AWS: SQLite in the folder, the filesystem
transport in the folder, the object store in the folder, the local provider.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.demo.broker import FOLDER_ENV, TRANSPORT
from schemas.settings import environment, update_environment

MONITOR_EVERY_S = 2.0  # the demo's beat cadence for the monitor (30 s in production)


def demo_env(folder: Path, price_per_hour: str, *, slack: bool) -> dict[str, str]:
    """Every variable trainops reads, pointed into `folder`. Slack's stay as they are (set:
    the thread goes to a real channel), AWS's are dropped: the demo never rents a machine."""
    env = {
        "TRAINOPS_DATABASE_URL": f"sqlite:///{folder}/trainops.db",
        "TRAINOPS_BROKER_URL": f"{TRANSPORT}://",
        FOLDER_ENV: str(folder / "broker"),
        "TRAINOPS_STORE": f"file://{folder}/store",
        "TRAINOPS_PROVIDER": "local",
        "TRAINOPS_CONFIG": str(folder / "trainops.toml"),  # absent: the embedded defaults
        "TRAINOPS_LOCAL_PRICE_PER_HOUR": price_per_hour,
        "TRAINOPS_MONITOR_INTERVAL": str(MONITOR_EVERY_S),
        "TRAINOPS_PROGRESS_EVERY": "5",
        "TRAINOPS_APPROVERS": "operator",  # the demo clicks the warning's buttons as one
        "TRAINOPS_WORKDIR": "",  # each agent picks its own scratch folder under `folder`
        "TMPDIR": str(folder / "tmp"),
        "TRAINOPS_CACHE_DIR": str(folder / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    if not slack:
        env.update(SLACK_BOT_TOKEN="", SLACK_APP_TOKEN="", SLACK_SIGNING_SECRET="")
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def apply_env(env: dict[str, str]) -> None:
    """Into this process (the demo calls the jobs service itself) and so into the worker's."""
    # No AWS_* from the caller's shell: the demo must never reach a real account.
    update_environment(env, drop_prefixes=("AWS_",))


class Worker:
    """`python -m celery -A bot.demo.broker worker -B` as a child; its stdout lines land in
    `lines` (the notifier's words), its log in `folder/worker.log`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.log_path = folder / "worker.log"
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc: subprocess.Popen | None = None
        self._pump: threading.Thread | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "bot.demo.broker", "--quiet", "worker", "-B",
                "--pool", "threads", "--concurrency", "3", "--loglevel", "INFO",
                "--without-heartbeat", "--without-mingle", "--without-gossip",
                "--logfile", str(self.log_path)]
        env = environment(PYTHONUNBUFFERED="1")
        # Its own process group: stopping the demo stops the worker and the beat it forked.
        # stdout: the notifier's words only; stderr (warnings, tracebacks): the log.
        with open(folder_log := self.folder / "worker.stderr", "ab") as errors:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors,
                                         stdin=subprocess.DEVNULL, text=True, bufsize=1, env=env,
                                         cwd=self.folder, start_new_session=True)
        self.stderr_path = folder_log
        self._pump = threading.Thread(target=self._read, name="worker-stdout", daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_local_machines(settings) -> list[str]:
    """Agents the demo started that are still running (a failure midway): terminate them."""
    from workers.providers.local import LocalProvider

    provider = LocalProvider(settings, grace_s=5.0)
    ids = [m.instance_id for m in provider.list_tagged()]
    provider.terminate(ids)
    return ids


def wait_until(predicate, timeout_s: float, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    return None
