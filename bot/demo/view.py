"""The demo's terminal: a Slack channel drawn in text.

The root message (the quote with its buttons), the clicks, and the job's thread, where every
line is what the Notifier said: the worker's ConsoleNotifier prints `[JOB] kind: text` on its
stdout, and `ThreadLine.parse` turns that back into a reply in the thread. The demo's own
narration ("here the demo clicks Approve") is set apart so nobody mistakes it for the bot.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from schemas.spec import Quote, utcnow

BOT = "trainops"
WIDTH = 100
# One notifier line: "[j-4f2a9c] launched: launched on this machine (local-1234)".
_LINE = re.compile(r"^\[(?P<job>j-[0-9a-z]+)\] (?P<kind>[a-z_]+): ?(?P<text>.*)$")
# Kinds the bot broadcasts to the channel as well as the thread (the warning, the report).
BROADCAST = frozenset({"warning", "report", "stopped_at_cap"})


@dataclass(frozen=True)
class ThreadLine:
    job_id: str
    kind: str
    text: str

    @staticmethod
    def parse(line: str) -> ThreadLine | None:
        m = _LINE.match(line.rstrip("\n"))
        return ThreadLine(m["job"], m["kind"], m["text"]) if m else None


def _clock(at: datetime | None = None) -> str:
    return f"{(at or utcnow()):%H:%M:%S}"


def buttons(*labels: str) -> str:
    return "  ".join(f"[ {label} ]" for label in labels)


class TerminalView:
    """Writes the conversation to a stream (stdout), one message at a time."""

    def __init__(self, stream: TextIO | None = None, channel: str = "#ml-runs"):
        self.stream = stream or sys.stdout
        self.channel = channel
        self._in_thread = False
        self._last_kind: str | None = None

    def _write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def header(self, lines: list[str]) -> None:
        self._write("=" * WIDTH)
        for line in lines:
            self._write(line)
        self._write("=" * WIDTH)

    def narrate(self, text: str) -> None:
        """The demo speaking, not the bot."""
        self._in_thread = False
        for line in textwrap.wrap(text, WIDTH - 4) or [""]:
            self._write(f"  ~ {line}")

    def root(self, lines: list[str], actions: list[str] | None = None) -> None:
        self._in_thread = False
        self._write("")
        self._write(f"{self.channel}  {BOT}  {_clock()}")
        for line in lines:
            self._write(f"│ {line}")
        if actions:
            self._write(f"│ {buttons(*actions)}")

    def click(self, who: str, label: str) -> None:
        self._in_thread = False
        self._write(f"  ▸ {who} clicked [ {label} ]")

    def quote(self, job_id: str, quote: Quote, rendered: str) -> None:
        self.root([f"Job {job_id} · requested by you", *rendered.splitlines()],
                  ["Approve", "Reject"])

    def decided(self, text: str) -> None:
        self._write(f"│ (the buttons go) {text}")

    def reply(self, line: ThreadLine, continuation: list[str] = ()) -> None:
        """A reply in the job's thread; broadcast kinds are marked as sent to the channel too."""
        if not self._in_thread:
            self._write("  └─ thread")
            self._in_thread = True
        where = f"  (also sent to {self.channel})" if line.kind in BROADCAST else ""
        self._write(f"     {BOT} {_clock()}  {line.kind}{where}")
        for text in [line.text, *continuation]:
            if text.strip():
                self._write(f"     │ {text}")
        self._last_kind = line.kind

    def raw(self, text: str) -> None:
        """A notifier line we could not place (kept verbatim: nothing the bot said is hidden)."""
        self._write(f"     │ {text.rstrip()}")
