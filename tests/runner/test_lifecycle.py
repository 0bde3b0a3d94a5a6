"""The monitor's reading of one attempt, table-driven."""

from __future__ import annotations

import pytest

from schemas.spec import AgentStatus
from schemas.status import FailureCause, JobStatus
from workers.lifecycle import observe
from workers.providers.base import Machine

S = JobStatus
UP = Machine("i-1", "running")
GONE_SPOT = Machine("i-1", "terminated", state_reason="Server.SpotInstanceTermination")
GONE = Machine("i-1", "terminated", state_reason="Client.UserInitiatedShutdown")

# job status, machine, agent state (attempt 1), stop reason -> target, cause
CASES = [
    (S.running, UP, None, None, None),
    (S.running, UP, "succeeded", None, S.succeeded),
    (S.running, GONE, "succeeded", None, S.succeeded),
    (S.running, UP, "failed", None, S.failed),
    (S.running, UP, "interrupted", None, S.interrupted),
    (S.running, GONE_SPOT, None, None, S.interrupted),
    (S.running, GONE, None, None, S.failed),
    (S.running, None, None, None, S.failed),
    (S.running, UP, "deadline", None, S.stopped_at_cap),
    (S.stopping, UP, "stopped", "cap", S.stopped_at_cap),
    (S.stopping, UP, "stopped", "user", S.cancelled),
    (S.stopping, GONE_SPOT, None, "cap", S.stopped_at_cap),
    (S.stopping, UP, "interrupted", "cap", S.stopped_at_cap),
    (S.cancelled, GONE, None, None, None),
    (S.succeeded, UP, "succeeded", None, None),
]


@pytest.mark.parametrize("status,machine,state,stop_reason,target", CASES)
def test_observe(status, machine, state, stop_reason, target):
    agent = AgentStatus(state=state, attempt=1, step=7) if state else None
    move = observe(status, 1, machine, agent, stop_reason)
    if target is None:
        assert move is None
        return
    assert move.target == target and move.message
    if target == S.failed:
        assert move.cause in (FailureCause.agent_error, FailureCause.instance_lost)


def test_a_status_from_an_earlier_attempt_is_not_this_attempts_word():
    old = AgentStatus(state="interrupted", attempt=1)
    assert observe(S.running, 2, UP, old) is None
