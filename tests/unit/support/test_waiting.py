"""The suite's wait: slow progress is not a hang; a hang says what it waited for."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.support import waiting


def test_a_wait_lasts_while_what_it_observes_keeps_changing(monkeypatch):
    monkeypatch.setattr(waiting, "HANG_S", 0.2)
    started, steps = time.monotonic(), itertools.count()
    assert waiting.wait_for(lambda: time.monotonic() - started > 0.6, interval=0.02,
                            observe=lambda: next(steps))  # 3 hang deadlines, always moving


def test_a_hang_names_what_was_awaited_and_the_last_value_seen(monkeypatch):
    monkeypatch.setattr(waiting, "HANG_S", 0.1)
    with pytest.raises(waiting.WaitTimeout, match=r"for job j-1 running; last seen: 'queued'"):
        waiting.wait_for(lambda: False, interval=0.02, what="job j-1 running",
                         observe=lambda: "queued")


def test_a_caller_cannot_ask_for_less_than_a_hang(monkeypatch):
    monkeypatch.setattr(waiting, "HANG_S", 0.3)
    started = time.monotonic()
    with pytest.raises(waiting.WaitTimeout):
        waiting.wait_for(lambda: False, timeout=0.01, interval=0.02)
    assert time.monotonic() - started >= 0.3
