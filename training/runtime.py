"""What runs beside the training: the heartbeat (progress.json, control.json, the log) and the
spot-notice watcher, and the one place they raise a reason to stop.

Every way an attempt can be told to end — an IMDS notice, `interrupt` or `stop` in control.json,
the deadline — sets a reason on `Signals`; the recipe loop (between steps) and the custom-command
supervisor read it and take the same exit path. control.json is read at every heartbeat AND at
every notice poll, so a stop or a rehearsed interruption is seen within seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.spec import Control, Progress
from schemas.store import read_model, write_model
from training.imds import Imds

log = logging.getLogger("trainops.agent")
MIN_DEADLINE_MARGIN_S = 15.0  # stop this long before the deadline at least, so the save fits


class Signals:
    """The first reason to stop wins; later ones do not overwrite it."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reason: str | None = None
        self.detail = ""
        self.deadline: datetime | None = None
        self.margin_s = MIN_DEADLINE_MARGIN_S
        self.checkpoint_requested = False

    def raise_reason(self, reason: str, detail: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason, self.detail = reason, detail
                log.warning("%s: %s", reason, detail)

    def check(self, now: datetime | None = None) -> str | None:
        """The reason to stop now, if any (the deadline counts `margin_s` early)."""
        if self.reason is None and self.deadline is not None:
            now = now or datetime.now(UTC)
            if now >= self.deadline - timedelta(seconds=self.margin_s):
                self.raise_reason("deadline", f"deadline {self.deadline.isoformat()} "
                                              f"(stopping {self.margin_s:.0f} s early so the save fits)")
        return self.reason

    def take_checkpoint_request(self) -> bool:
        with self._lock:
            asked, self.checkpoint_requested = self.checkpoint_requested, False
            return asked

    def apply_control(self, control: Control) -> None:
        deadline = control.deadline
        if deadline is not None and deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=UTC)  # the contract says UTC; naive means UTC
        self.deadline = deadline
        if control.interrupt:
            self.raise_reason("interrupted", "interruption rehearsal (control.json interrupt)")
        if control.stop:
            self.raise_reason("stopped", "stop requested (control.json)")
        self.check()


class Tracker:
    """The numbers progress.json reports, plus every step's loss in a local metrics file."""

    def __init__(self, attempt: int, metrics_path: Path):
        self.attempt = attempt
        self.phase = "setup"
        self.step = self.total_steps = self.tokens_seen = 0
        self.loss: float | None = None
        self.uploader = None  # the checkpoint uploader: last uploaded step, upload error
        self.started = time.monotonic()
        self._train_mark: tuple[float, int, int] | None = None  # (time, step, tokens) at start
        self.metrics_path = metrics_path

    def start_training(self, step: int, tokens_seen: int) -> None:
        self.phase, self.step, self.tokens_seen = "train", step, tokens_seen
        self._train_mark = (time.monotonic(), step, tokens_seen)

    def record(self, step: int, loss: float | None, tokens: int = 0, **extra) -> None:
        self.step, self.loss = step, loss
        self.tokens_seen += tokens
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps({"step": step, "loss": loss, "tokens": tokens,
                                     "t": round(time.monotonic() - self.started, 3), **extra}) + "\n")

    def snapshot(self) -> Progress:
        rate = eta = None
        if self._train_mark and self.step > self._train_mark[1]:
            spent = time.monotonic() - self._train_mark[0]
            rate = (self.tokens_seen - self._train_mark[2]) / max(spent, 1e-9)
            per_step = spent / (self.step - self._train_mark[1])
            eta = max(self.total_steps - self.step, 0) * per_step
        return Progress(
            phase=self.phase, step=self.step, total_steps=self.total_steps, loss=self.loss,
            tokens_per_s=rate or 0.0, tokens_seen=self.tokens_seen,
            elapsed_s=time.monotonic() - self.started, eta_s=eta,
            last_checkpoint_step=getattr(self.uploader, "uploaded_step", None),
            upload_error=getattr(self.uploader, "error", None),
            attempt=self.attempt,
        )


class Watchers:
    """Two daemon threads: the heartbeat and the notice poll."""

    def __init__(self, spec, store, prefix: str, signals: Signals, tracker: Tracker, log_path: Path):
        self.spec, self.store, self.prefix = spec, store, prefix
        self.signals, self.tracker, self.log_path = signals, tracker, log_path
        self.imds = Imds()
        self._stop = threading.Event()
        self._rebalance_seen = False
        self._threads = [
            threading.Thread(target=self._loop, args=(min(spec.heartbeat_s, 30.0), self.beat),
                             name="heartbeat", daemon=True),
            threading.Thread(target=self._loop, args=(spec.notice_poll_s, self.poll_notice),
                             name="notice-watch", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _loop(self, every_s: float, action) -> None:
        while not self._stop.is_set():
            try:
                action()
            except Exception as exc:  # a store hiccup must not end the attempt; it is logged
                log.warning("%s failed: %s", threading.current_thread().name, exc)
            self._stop.wait(every_s)

    def read_control(self) -> None:
        control = read_model(self.store, f"{self.prefix}/control.json", Control)
        if control is not None:
            self.signals.apply_control(control)
        else:
            self.signals.check()

    def beat(self) -> None:
        self.read_control()
        self.write_progress()
        self.ship_logs()

    def write_progress(self) -> None:
        write_model(self.store, f"{self.prefix}/progress.json", self.tracker.snapshot())

    def ship_logs(self) -> None:
        attempt = self.spec.attempt
        if self.log_path.exists():
            self.store.upload_file(f"{self.prefix}/logs/attempt-{attempt}.log", self.log_path)
        if self.tracker.metrics_path.exists():
            self.store.upload_file(f"{self.prefix}/logs/metrics-attempt-{attempt}.jsonl",
                                   self.tracker.metrics_path)

    def poll_notice(self) -> None:
        # control.json is read here too, not only at the heartbeat: a stop, a rehearsed
        # interruption or a deadline brought forward must be seen within seconds.
        self.read_control()
        action, rebalance = self.imds.poll()
        if action is not None:
            self.signals.raise_reason("interrupted", f"spot interruption notice {json.dumps(action)}")
        elif rebalance is not None and not self._rebalance_seen:
            # Elevated risk, not a notice: save now and keep going.
            self._rebalance_seen = True
            self.signals.checkpoint_requested = True
            log.warning("rebalance recommendation %s: checkpointing now", json.dumps(rebalance))
        self.read_control()
