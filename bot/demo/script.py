"""What the demo does, step by step, and what it waits for before the next step.

The people's side is played here (the `/train`, the Approve click, the interruption rehearsal,
the answer to the spend warning); the bot's side is the real worker's, read from its notifier.
A step whose machinery is not in this build is left out with a line that says so, never faked.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import time
from argparse import Namespace
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from bot.demo.view import TerminalView, ThreadLine

# The demo's job is sized from this machine's measured speed: bot/demo/sizing.py.
DEMO_PRICE_PER_HOUR = "31"
INTERRUPT_AFTER_S = 65.0  # attempt 1 has used the minute it is billed for anyway
TOP_OPTIONS = 6  # of the quote's table, as the Slack message shows the cheapest few
TIME_LIMIT_S = 180.0  # at least; a job quoted at T seconds gets 3 T + 120 s (a loaded machine)
REQUESTER = "you"
OPERATOR = "operator"  # `trainops train --yes` approves as this actor too


@dataclass
class Result:
    ok: bool
    message: str = ""
    chart: Path | None = None
    left_out: list[str] = field(default_factory=list)


def interrupt_like_the_cli(job_id: str) -> str:
    """`trainops interrupt JOB`, the very function, with its one line captured for the view."""
    from bot.cli.jobs import interrupt

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        interrupt(Namespace(job=job_id))
    return out.getvalue().strip()


def capabilities() -> dict[str, bool]:
    """Which parts of the spend guard this build has (the demo shows what is there)."""
    import importlib.util

    from workers.notify import ConsoleNotifier

    return {
        "warning": hasattr(ConsoleNotifier, "warning"),
        "report": hasattr(ConsoleNotifier, "report"),
        "progress": hasattr(ConsoleNotifier, "progress"),
        "extend": importlib.util.find_spec("workers.state.spend_actions") is not None,
    }


class Script:
    text = ""  # what "you" type: the main demo sizes its own (bot/demo/sizing.py); see pipeline.py
    time_limit_s = TIME_LIMIT_S

    def __init__(self, db, settings, worker, folder: Path, slack_channel: str | None = None,
                 view: TerminalView | None = None):
        from schemas.store import open_store

        self.db, self.settings, self.worker, self.folder = db, settings, worker, folder
        self.view = view or TerminalView()
        self.store = open_store(settings.store)
        self.slack_channel = slack_channel
        self.caps = capabilities()
        self.seen: list[str] = []  # kinds of thread lines, in order
        self.job_id: str | None = None
        self.interrupted_at: float | None = None
        self.extended = False
        self.limit_s = TIME_LIMIT_S

    # -- the people's side ---------------------------------------------------------------------
    def play(self, started: float) -> Result:
        from bot.cli.quote import render_quote
        from schemas.config import cached_config
        from workers.state import jobs

        self.view.header([
            "trainops demo: the main job on this machine (no Slack, AWS or Redis needed)",
            f"  working folder {self.folder}: SQLite, Celery's message folder, the store",
            f"  the 'cloud' is this machine at ${self.settings.local_price_per_hour:g}/h "
            "(a made-up price, so the money moves fast)",
        ])
        config = cached_config(self.settings.config_path)
        quote, limit_s = self._quote(config)
        self.limit_s = max(self.time_limit_s, limit_s)
        if quote is None:
            return Result(False, "this machine could not be measured; see the line above")
        if not self.worker.alive():
            self.worker.start()
        self.view.narrate(f"you type:  /train {quote.request.text}")
        self.job_id = jobs.open_job(self.db, quote, REQUESTER, self.slack_channel,
                                    provider="local", ttl_h=config.defaults.quote_ttl_h)
        shown = quote.model_copy(update={"options": quote.options[:TOP_OPTIONS]})
        root = self._post_root(quote, render_quote(shown))
        self.view.click("you (as the operator, who may approve anything)", "Approve")
        outcome = jobs.decide(self.db, self.job_id, OPERATOR, "approve", self.settings.approvers)
        if not outcome.ok:
            return Result(False, f"approval refused: {outcome.message}")
        self.view.decided(outcome.message)
        self._update_root(root)
        for name, present in self.caps.items():
            if not present:
                self.view.narrate(f"(left out: the {name} step; this build of trainops does not "
                                  "have it yet)")
        return self._follow(started)

    def _quote(self, config):
        """The quote "you" get, and how long the demo waits for its job: this machine measured
        first, then the job sized to run a few minutes on it (bot/demo/sizing.py)."""
        from bot.demo.sizing import size_the_job

        return size_the_job(self.settings, config, self.view.narrate)

    def _post_root(self, quote, rendered: str):
        if self.slack_channel is None:
            self.view.quote(self.job_id, quote, rendered)
            return None
        from bot.slack.blocks.quote import quote_blocks, quote_text
        from bot.slack.notifier import slack_client
        from workers.state.jobs import set_root_message

        client = slack_client(self.settings)
        posted = client.chat_postMessage(channel=self.slack_channel,
                                         text=quote_text(self.job_id, quote),
                                         blocks=quote_blocks(self.job_id, quote, REQUESTER))
        set_root_message(self.db, self.job_id, posted["channel"], posted["ts"])
        self.view.narrate(f"posted quote {self.job_id} to {self.slack_channel}; its thread "
                          "follows there")
        return client, posted["channel"], posted["ts"]

    def _update_root(self, root) -> None:
        if root is None:
            return
        from bot.slack.blocks.quote import decided_blocks, quote_text
        from workers.state.jobs import get_job

        client, channel, ts = root
        job = get_job(self.db, self.job_id)
        client.chat_update(channel=channel, ts=ts, text=quote_text(job.job_id, job.quote),
                           blocks=decided_blocks(job, "approve", OPERATOR, job.decided_at))

    # -- following the job ---------------------------------------------------------------------
    def _follow(self, started: float) -> Result:
        from workers.state.jobs import get_job

        limit = time.monotonic() + self.limit_s  # from the approval: measuring came first
        events_shown = 0
        while time.monotonic() < limit:
            self._drain()
            job = get_job(self.db, self.job_id)
            if self.slack_channel is not None:
                for event in job.events[events_shown:]:
                    self.view.narrate(f"{event['kind']}: {event['message']}")
                events_shown = len(job.events)
            self._maybe_interrupt(job)
            if job.status.is_terminal():
                return self._finish(job, limit)
            if not self.worker.alive():
                return Result(False, "the worker stopped: " + self.worker.log_tail(1))
        job = get_job(self.db, self.job_id)
        return Result(False, f"the job is still {job.status.value} after "
                             f"{self.limit_s:.0f} s; it was waiting for {self._waiting(job)}")

    def _drain(self) -> None:
        import queue

        wait_s = 0.1  # the first line may take a moment; the rest are read at once
        while True:
            try:
                line = self.worker.lines.get(timeout=wait_s)
            except queue.Empty:
                return
            wait_s = 0.0
            parsed = ThreadLine.parse(line)
            if parsed is None:
                self.view.raw(line)
                continue
            self.view.reply(parsed)
            self.seen.append(parsed.kind)
            if parsed.kind == "warning":
                self._answer_warning()
            elif parsed.kind == "ask_recovery":
                self._answer_recovery()

    def _maybe_interrupt(self, job) -> None:
        """Once attempt 1 is training and has run past the minute it is billed for anyway:
        rehearse a spot interruption (the agent checkpoints on the notice, nothing is redone)."""
        if self.interrupted_at is not None or job.status.value != "running" or not job.attempts:
            return
        from schemas.job import Progress
        from schemas.spec import utcnow
        from schemas.store import job_prefix, read_model

        launched = job.attempts[0]["launched_at"]
        if launched is None:
            return
        progress = read_model(self.store, f"{job_prefix(self.job_id)}/progress.json", Progress)
        if progress is None or progress.attempt != 1 or progress.step < 1:
            return
        # Past the paid minute; or, on a run going faster than quoted, before it ends.
        ran_s = (utcnow() - launched).total_seconds()
        if ran_s < INTERRUPT_AFTER_S and progress.step < 0.6 * max(1, progress.total_steps):
            return
        self.interrupted_at = time.monotonic()
        self.view.narrate(f"attempt 1 is at step {progress.step} after its first billed minute; "
                          "now AWS takes the machine back. The demo rehearses that, as "
                          f"`trainops interrupt {self.job_id}` does:")
        self.view.narrate(interrupt_like_the_cli(self.job_id))

    def _answer_warning(self) -> None:
        """The warning's buttons: the demo clicks "Extend cap", as an approver would."""
        if self.extended or not self.caps["extend"]:
            return
        from workers.rules.cards import default_extend_by
        from workers.state import spend_actions
        from workers.state.jobs import get_job

        job = get_job(self.db, self.job_id)
        by = default_extend_by(Decimal(str(job.cap_usd)))
        self.view.click("you (as the operator, an approver)", f"Extend cap by ${by}")
        outcome = spend_actions.extend_cap(self.db, self.job_id, OPERATOR, by,
                                           self.settings.approvers, settings=self.settings)
        self.extended = outcome.ok
        self.view.narrate(outcome.message)

    def _answer_recovery(self) -> None:
        """The recovery question's buttons: the demo clicks "Continue on the next option"."""
        from workers.state import spend_actions

        self.view.click("you (as the operator, an approver)", "Continue on the next option")
        outcome = spend_actions.continue_recovery(self.db, self.job_id, OPERATOR,
                                                  self.settings.approvers, settings=self.settings)
        self.view.narrate(outcome.message)

    def _settle(self, job, limit: float, wait_report: bool) -> Result | None:
        """Waits for the report when the thread will get one, reads the thread a last time,
        and fails the demo when the job did not succeed (None: it did)."""
        while wait_report and "report" not in self.seen and time.monotonic() < limit:
            self._drain()
            time.sleep(0.2)
        time.sleep(0.5)  # the notifier's last lines may still be on their way
        self._drain()
        if job.status.value != "succeeded":
            return Result(False, f"the job ended {job.status.value}"
                                 + (f" ({job.failure_cause})" if job.failure_cause else ""))
        return None

    def _finish(self, job, limit: float) -> Result:
        if failed := self._settle(job, limit, wait_report=self.caps["report"]):
            return failed
        missing = [k for k, wanted in (("launched", True), ("interrupted", True),
                                       ("warning", self.caps["warning"] and self._crossed(job)),
                                       ("report", self.caps["report"])) if wanted
                   and k not in self.seen]
        if len(job.attempts) < 2:
            missing.append("a second attempt after the interruption")
        if missing:
            return Result(False, "the job succeeded but the thread never showed: "
                                 + ", ".join(missing))
        if self.caps["warning"] and not self._crossed(job):
            self.view.narrate(f"no warning: the run cost ${job.spend_usd:.2f}, less than the "
                              f"${job.cap_usd * job.warn:.2f} it warns at")
        return Result(True, chart=self._keep_chart())

    @staticmethod
    def _crossed(job) -> bool:
        """The spend reached the warning's threshold (a run faster than quoted may not)."""
        return job.spend_usd >= job.cap_usd * job.warn

    def _keep_chart(self) -> Path | None:
        """The report's chart, copied next to where the demo was started (the folder goes)."""
        charts = sorted(self.folder.rglob("*.png"), key=lambda p: p.stat().st_mtime)
        if not charts:
            return None
        target = Path.cwd() / f"trainops-demo-{self.job_id}.png"
        shutil.copyfile(charts[-1], target)
        return target

    def _waiting(self, job) -> str:
        if job.status.value == "interrupted":
            return "a recovery (a relaunch from the last checkpoint)"
        if job.status.value in ("approved", "provisioning"):
            return "a machine"
        return "the agent to finish"
