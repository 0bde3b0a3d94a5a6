"""`trainops demo --pipeline`: a pipeline job through the same flow as the main demo.

The `/train pipeline` on the tiny model and the bundled RL tasks (demo-rl): prep, sft, the
evaluation before RL, GRPO from sft's adapter, the evaluation after it; each stage a child of
the agent. The quote is this machine's own, stage by stage (issue 13); the demo approves it,
the job runs on it (never on a substitute), the demo follows the thread and checks the final
report: every stage with its time and cost, the evaluation before RL against the one after, and
the quote against what was spent. No interruption is rehearsed here (the main demo shows that;
the agent's tests interrupt a pipeline in RL).
"""

from __future__ import annotations

from bot.demo.script import Result, Script
from bot.demo.view import TerminalView

# Four rl steps and 16 held-out prompts: with five stage starts, past the 60 s a start is billed
# at least, so the quote's time model is what the spend is compared with.
PIPELINE_TEXT = ("pipeline model=tiny data=demo-rl samples=64 epochs=1 seq_len=64 precision=fp32 "
                 "reward=numeric eval_samples=16 num_tasks=32 n_samples=4 budget=10")
REPORT_WANTS = ("Stages:", "prep", "sft", "rl", "eval", "SFT baseline vs RL:", "mean reward")


class RecordingView(TerminalView):
    """The terminal view, keeping every line the thread showed (the report is checked on it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shown: list[str] = []

    def reply(self, line, continuation=()) -> None:
        self.shown += [line.text, *continuation]
        super().reply(line, continuation)

    def raw(self, text: str) -> None:
        self.shown.append(text)
        super().raw(text)


class PipelineScript(Script):
    text = PIPELINE_TEXT
    time_limit_s = 420.0  # five stages, each a process loading torch, on a busy 2-core machine

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("view", RecordingView())
        super().__init__(*args, **kwargs)

    def _quote(self, config):
        """This machine's own quote for the pipeline, every stage priced from what it measured
        (workers/quoting/local_stages.py): the SFT speed, the speed it generates at, each
        stage's start. The job runs on the option approved, so the report compares like with
        like."""
        from bot.grammar.commands import parse_request
        from workers.providers.local_calibration import CalibrationError, ensure_profile
        from workers.quoting import make_quote

        self.view.narrate("this machine quotes the pipeline itself: measured once (training "
                          "speed, generation speed, each stage's start), then each stage priced "
                          "from those figures")
        request = parse_request(self.text, config)
        try:
            ensure_profile(self.settings, config, say=self.view.narrate, request=request)
        except CalibrationError as exc:
            self.view.narrate(str(exc))
            return None, 0.0
        quote = make_quote(request, config, settings=self.settings, live=False)
        mine = quote.options[0]
        if not mine.feasible or mine.market != "local":
            self.view.narrate(f"this machine cannot take the pipeline: {mine.reason}")
            return None, 0.0
        self.quoted = mine
        # A stage that has not finished in three times its quoted time (a loaded machine) failed.
        return quote, max(self.time_limit_s, 3 * mine.hours * 3600 + 120)

    def _maybe_interrupt(self, job) -> None:
        return None

    def _finish(self, job, limit: float) -> Result:
        if failed := self._settle(job, limit, wait_report=True):
            return failed
        shown = "\n".join(getattr(self.view, "shown", []))
        report = shown[shown.find("Stages:"):] if "Stages:" in shown else ""
        missing = [w for w in REPORT_WANTS if w not in report]
        if "substitute" in self.seen:
            return Result(False, "the job ran on another option than the one approved")
        if "launched" not in self.seen or "report" not in self.seen or missing:
            return Result(False, "the pipeline succeeded but the thread never showed: "
                                 + ", ".join([k for k in ("launched", "report") if k not in self.seen]
                                             + [f"{w!r} in the report" for w in missing]))
        self.view.narrate(accuracy_line(self.quoted, job.spend_usd))
        return Result(True, chart=self._keep_chart())


def accuracy_line(quoted, spent) -> str:
    """"quoted $0.52 (P90 $0.66) for this machine; spent $0.55 (+5.8%)"."""
    error = (float(spent) - quoted.cost_usd) / quoted.cost_usd * 100 if quoted.cost_usd else 0.0
    return (f"quoted ${quoted.cost_usd:.2f} (P90 ${quoted.cost_p90_usd:.2f}) for this machine, "
            f"{quoted.hours * 3600:.0f} s; spent ${float(spent):.2f} ({error:+.1f}%)")
