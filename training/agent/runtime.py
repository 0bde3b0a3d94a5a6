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
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from schemas.job import Control, Progress, RunProgress
from schemas.store import read_model, write_agent_doc
from training.agent.spot import Imds

log = logging.getLogger("trainops.agent")
MIN_DEADLINE_MARGIN_S = 15.0  # stop this long before the deadline at least, so the save fits


class Signals:
    """The first reason to stop wins; later ones do not overwrite it."""

    def __init__(self, clock=None, mono=None):
        self._lock = threading.Lock()
        self.reason: str | None = None
        self.detail = ""
        self.deadline: datetime | None = None
        # The money deadline on this machine's monotonic clock: control.json's seconds_left,
        # counted from when it was read. Whichever of the two comes first stops the run, so a
        # wall clock running slow cannot extend the cap (and one running fast stops it early).
        self.deadline_mono: float | None = None
        self._seen: tuple | None = None  # the control document the countdown started from
        self.clock = clock or (lambda: datetime.now(UTC))
        self.mono = mono or time.monotonic
        self.margin_s = MIN_DEADLINE_MARGIN_S
        self.checkpoint_requested = False

    @property
    def has_deadline(self) -> bool:
        return self.deadline is not None or self.deadline_mono is not None

    def seconds_left(self) -> float | None:
        """Money time left by the earlier of the two clocks (None: no deadline)."""
        left = []
        if self.deadline is not None:
            left.append((self.deadline - self.clock()).total_seconds())
        if self.deadline_mono is not None:
            left.append(self.deadline_mono - self.mono())
        return min(left) if left else None

    def raise_reason(self, reason: str, detail: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason, self.detail = reason, detail
                log.warning("%s: %s", reason, detail)

    def check(self, now: datetime | None = None) -> str | None:
        """The reason to stop now, if any (the deadline counts `margin_s` early)."""
        if self.reason is None and self.has_deadline:
            if now is not None:  # a caller's wall time (tests): the wall-clock half only
                left = ((self.deadline - now).total_seconds() if self.deadline is not None
                        else self.seconds_left())
            else:
                left = self.seconds_left()
            if left is not None and left <= self.margin_s:
                when = self.deadline.isoformat() if self.deadline else "the money deadline"
                self.raise_reason("deadline", f"deadline {when}, {left:.0f} s of money left "
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
        seen = (control.updated_at, control.seconds_left)
        if control.seconds_left is not None and seen != self._seen:
            # A new write: count its duration from now, on this machine's monotonic clock.
            self.deadline_mono = self.mono() + control.seconds_left
        elif control.seconds_left is None and control.deadline is None:
            self.deadline_mono = None  # the control plane lifted the deadline
        self._seen = seen
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
        self.runs: dict[str, RunProgress] = {}  # a sweep's runs; the job's step sums theirs
        self._lock = threading.Lock()  # a sweep's runs report from one thread each

    def start_training(self, step: int, tokens_seen: int, again: bool = False) -> None:
        """`again`: another run of a sweep starts; the rate keeps counting from the first."""
        self.phase = "train"
        if again and self._train_mark is not None:
            return
        self.step, self.tokens_seen = (self._run_steps(), tokens_seen) if self.runs else (step, tokens_seen)
        self._train_mark = (time.monotonic(), self.step, self.tokens_seen)

    def update_run(self, name: str, **fields) -> None:
        with self._lock:
            run = self.runs.get(name)
            if run is not None:
                for key, value in fields.items():
                    setattr(run, key, value)
                self.total_steps = sum(r.total_steps for r in self.runs.values())

    def _run_steps(self) -> int:
        return sum(r.step for r in self.runs.values())

    def record(self, step: int, loss: float | None, tokens: int = 0, **extra) -> None:
        with self._lock:
            self.step = self._run_steps() if extra.get("run") in self.runs else step
            self.loss = loss
            self.tokens_seen += tokens
            self._write_metrics(step, loss, tokens, extra)

    def _write_metrics(self, step: int, loss: float | None, tokens: int, extra: dict) -> None:
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps({"step": step, "loss": loss, "tokens": tokens,
                                     "t": round(time.monotonic() - self.started, 3), **extra}) + "\n")

    def _runs_copy(self) -> list[RunProgress]:
        with self._lock:
            return [r.model_copy() for r in self.runs.values()]

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
            runs=self._runs_copy(),
        )


PROGRESS_POLL_S = 0.5  # how often the progress thread looks for a new step or phase


class Watchers:
    """Three daemon threads: the heartbeat, the notice poll, and progress that moves (a new
    step or phase is written within `progress_every_s`, never more often)."""

    def __init__(self, spec, store, prefix: str, signals: Signals, tracker: Tracker, log_path: Path):
        self.spec, self.store, self.prefix = spec, store, prefix
        self.signals, self.tracker, self.log_path = signals, tracker, log_path
        # The metadata service exists only on EC2: elsewhere there is nothing to poll (and
        # 169.254.169.254 may be someone else's), so the notice thread only reads control.json.
        # (An explicit AWS_EC2_METADATA_SERVICE_ENDPOINT also counts: someone pointed us at one.)
        on_ec2 = getattr(spec, "on_ec2", False) or bool(
            os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT"))
        self.imds = Imds() if on_ec2 else None
        self._stop = threading.Event()
        self._rebalance_seen = False
        self._written: tuple[float, int, str] | None = None  # (when, step, phase) last written
        self._write_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, args=(PROGRESS_POLL_S, self.progress_if_moved),
                             name="progress", daemon=True),
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
        """Apply control.json. A missing, unreadable or invalid document changes nothing: the
        last valid one (its deadline above all) stays in force, so a store fault, or garbage
        written over the file, can never lift the cap."""
        try:
            control = read_model(self.store, f"{self.prefix}/control.json", Control)
        except Exception as exc:  # noqa: BLE001 - keep the last valid control
            log.warning("control.json unreadable (%s): keeping the last valid one", exc)
            control = None
        if control is not None:
            self.signals.apply_control(control)
        else:
            self.signals.check()

    def require_deadline(self, timeout_s: float = 120.0, every_s: float = 2.0) -> None:
        """Training never starts without a money deadline when the spec asks for one: wait for
        a valid control.json that holds one, else refuse (UserError: the attempt fails)."""
        from schemas.errors import UserError

        if not self.spec.require_deadline:
            return
        end = time.monotonic() + timeout_s
        while True:
            self.read_control()
            if self.signals.has_deadline:
                return
            if time.monotonic() >= end:
                raise UserError(f"no valid money deadline in control.json after {timeout_s:.0f} s:"
                                " refusing to train without one")
            time.sleep(every_s)

    def beat(self) -> None:
        self.read_control()
        self.write_progress()
        self.ship_logs()

    def write_progress(self) -> None:
        with self._write_lock:
            snap = self.tracker.snapshot()
            write_agent_doc(self.store, self.prefix, "progress.json", snap)
            self._written = (time.monotonic(), snap.step, snap.phase)

    def progress_if_moved(self) -> None:
        """Write progress.json when the step or the phase changed since the last write, at most
        every `progress_every_s`: cards then show the run moving, not a 15 s old step."""
        every = getattr(self.spec, "progress_every_s", 5.0)
        last = self._written
        if last is not None and (last[1], last[2]) == (self.tracker.step, self.tracker.phase):
            return
        if last is not None and time.monotonic() - last[0] < every:
            return
        self.write_progress()

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
        if self.imds is None:
            return
        action, rebalance = self.imds.poll()
        if action is not None:
            self.signals.raise_reason("interrupted", f"spot interruption notice {json.dumps(action)}")
        elif rebalance is not None and not self._rebalance_seen:
            # Elevated risk, not a notice: save now and keep going.
            self._rebalance_seen = True
            self.signals.checkpoint_requested = True
            log.warning("rebalance recommendation %s: checkpointing now", json.dumps(rebalance))
        self.read_control()
