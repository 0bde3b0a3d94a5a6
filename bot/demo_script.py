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

from bot.demo_view import TerminalView, ThreadLine

# The demo's job: the built-in tiny model on the bundled data, long enough (about 30 s of
# training on a 2-core CPU, 6 steps an epoch) for a checkpoint, a rehearsed interruption and a resume.
#
# The money, at $31/h with a $2 cap: a start is billed 60 s at least (EC2's rule, which the
# meter applies to every provider), so attempt 1 costs $0.52 and the relaunch brings the spend
# to $1.03, just over half the cap: the warning comes then (warn=0.5), or earlier when the
# agent's ETA projects the spend over the cap (a slow, busy machine). The default
# warning, at 80%, cannot come this early without the agent stopping: its deadline keeps 60 s
# of money in reserve (workers/guard.py) and it stops 15 s before that (training/runtime.py),
# so at 80% of a cap this small it would already be inside that reserve. At the warning the
# demo clicks "Extend cap" as the approver; the job would also finish without it, inside the
# deadline the $2 cap leaves.
EPOCHS = 50
DEMO_TEXT = (f"sft model=tiny data=demo samples=400 epochs={EPOCHS} seq_len=256 precision=fp32 "
             "budget=2 warn=0.5")
DEMO_PRICE_PER_HOUR = "31"
TOP_OPTIONS = 6  # of the quote's table, as the Slack message shows the cheapest few
TIME_LIMIT_S = 180.0  # a step that has not come by then failed; the whole demo takes ~1 minute
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
    from bot.jobs_cli import interrupt

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
        "extend": importlib.util.find_spec("workers.spend_actions") is not None,
    }


class Script:
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

    # -- the people's side ---------------------------------------------------------------------
    def play(self, started: float) -> Result:
        from bot.commands import parse_request
        from bot.quote_cli import render_quote
        from schemas.config import cached_config
        from workers import jobs
        from workers.quoting import make_quote

        self.view.header([
            "trainops demo: the main job on this machine (no Slack, AWS or Redis needed)",
            f"  working folder {self.folder}: SQLite, Celery's message folder, the store",
            f"  the 'cloud' is this machine at ${self.settings.local_price_per_hour:g}/h "
            "(a made-up price, so the money moves fast)",
        ])
        config = cached_config(self.settings.config_path)
        self.view.narrate(f"you type:  /train {DEMO_TEXT}")
        quote = make_quote(parse_request(DEMO_TEXT, config), config, settings=self.settings,
                           live=False)
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

    def _post_root(self, quote, rendered: str):
        if self.slack_channel is None:
            self.view.quote(self.job_id, quote, rendered)
            return None
        from bot.blocks import quote_blocks, quote_text
        from workers.jobs import set_root_message
        from workers.notify_slack import slack_client

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
        from bot.blocks import decided_blocks, quote_text
        from workers.jobs import get_job

        client, channel, ts = root
        job = get_job(self.db, self.job_id)
        client.chat_update(channel=channel, ts=ts, text=quote_text(job.job_id, job.quote),
                           blocks=decided_blocks(job, "approve", OPERATOR, job.decided_at))

    # -- following the job ---------------------------------------------------------------------
    def _follow(self, started: float) -> Result:
        from workers.jobs import get_job

        limit = started + TIME_LIMIT_S
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
                             f"{TIME_LIMIT_S:.0f} s; it was waiting for {self._waiting(job)}")

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
        """Once attempt 1 has a checkpoint in the store: rehearse a spot interruption."""
        if self.interrupted_at is not None or job.status.value != "running":
            return
        from schemas.store import job_prefix

        checkpoints = [k for k in self.store.list(f"{job_prefix(self.job_id)}/checkpoints/")
                       if k.endswith("MANIFEST.json")]
        if not checkpoints:
            return
        self.interrupted_at = time.monotonic()
        self.view.narrate("attempt 1 has a checkpoint in the store; now AWS takes the machine "
                          "back. The demo rehearses that, as `trainops "
                          f"interrupt {self.job_id}` does:")
        self.view.narrate(interrupt_like_the_cli(self.job_id))

    def _answer_warning(self) -> None:
        """The warning's buttons: the demo clicks "Extend cap", as an approver would."""
        if self.extended or not self.caps["extend"]:
            return
        from workers import spend_actions
        from workers.cards import default_extend_by
        from workers.jobs import get_job

        job = get_job(self.db, self.job_id)
        by = default_extend_by(Decimal(str(job.cap_usd)))
        self.view.click("you (as the operator, an approver)", f"Extend cap by ${by}")
        outcome = spend_actions.extend_cap(self.db, self.job_id, OPERATOR, by,
                                           self.settings.approvers, settings=self.settings)
        self.extended = outcome.ok
        self.view.narrate(outcome.message)

    def _answer_recovery(self) -> None:
        """The recovery question's buttons: the demo clicks "Continue on the next option"."""
        from workers import spend_actions

        self.view.click("you (as the operator, an approver)", "Continue on the next option")
        outcome = spend_actions.continue_recovery(self.db, self.job_id, OPERATOR,
                                                  self.settings.approvers, settings=self.settings)
        self.view.narrate(outcome.message)

    def _finish(self, job, limit: float) -> Result:
        if self.caps["report"]:
            while "report" not in self.seen and time.monotonic() < limit:
                self._drain()
                time.sleep(0.2)
        time.sleep(0.5)
        self._drain()
        if job.status.value != "succeeded":
            return Result(False, f"the job ended {job.status.value}"
                                 + (f" ({job.failure_cause})" if job.failure_cause else ""))
        missing = [k for k, wanted in (("launched", True), ("interrupted", True),
                                       ("warning", self.caps["warning"]),
                                       ("report", self.caps["report"])) if wanted
                   and k not in self.seen]
        if len(job.attempts) < 2:
            missing.append("a second attempt after the interruption")
        if missing:
            return Result(False, "the job succeeded but the thread never showed: "
                                 + ", ".join(missing))
        return Result(True, chart=self._keep_chart())

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
