"""The transition table and the claims that enforce it."""

from __future__ import annotations

import pytest

from schemas.status import (
    LIVE_STATUSES,
    TRANSITIONS,
    FailureCause,
    IllegalTransition,
    JobStatus,
    check_transition,
)

S = JobStatus
TERMINAL = {S.succeeded, S.failed, S.cancelled, S.stopped_at_cap, S.rejected, S.expired}


def test_every_status_has_a_row_and_terminal_ones_have_no_moves():
    assert set(TRANSITIONS) == set(JobStatus)
    assert {s for s in JobStatus if s.is_terminal()} == TERMINAL
    assert LIVE_STATUSES == set(JobStatus) - TERMINAL


@pytest.mark.parametrize("current,target", [
    (S.awaiting_approval, S.approved), (S.awaiting_approval, S.rejected),
    (S.awaiting_approval, S.expired), (S.approved, S.provisioning),
    (S.provisioning, S.running), (S.running, S.stopping), (S.stopping, S.succeeded),
    (S.running, S.interrupted), (S.interrupted, S.provisioning), (S.stopping, S.stopped_at_cap),
    (S.provisioning, S.failed),
])
def test_design_moves_are_legal(current, target):
    check_transition(current, target)


@pytest.mark.parametrize("current,target", [
    (S.awaiting_approval, S.running), (S.approved, S.succeeded), (S.succeeded, S.running),
    (S.cancelled, S.approved), (S.expired, S.approved), (S.rejected, S.approved),
    (S.running, S.approved), (S.interrupted, S.running), (S.stopping, S.running),
])
def test_illegal_moves_raise(current, target):
    with pytest.raises(IllegalTransition, match=f"{current.value} -> {target.value}"):
        check_transition(current, target)


@pytest.mark.parametrize("status", sorted(LIVE_STATUSES))
def test_a_person_can_always_cancel_a_live_job(status):
    check_transition(status, S.cancelled)


def test_failure_causes_named_in_the_issue_exist():
    for cause in ("no_capacity", "precheck", "setup", "agent_error", "quota",
                  "cancelled_during_recovery"):
        assert FailureCause(cause).value == cause
