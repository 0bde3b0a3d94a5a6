"""The monitor's reading of one attempt, table-driven."""

from __future__ import annotations

import pytest

from schemas.job import AgentStatus
from schemas.status import FailureCause, JobStatus
from workers.providers.base import Machine
from workers.rules.lifecycle import observe

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


def test_a_pipeline_finishes_with_its_model_stage_named():
    said = AgentStatus(state="succeeded", attempt=1, step=6, final_loss=0.5, stage="rl")
    assert observe(S.running, 1, UP, said).message == "finished rl at step 6, loss 0.5"
    one = AgentStatus(state="succeeded", attempt=1, step=6, final_loss=0.5)
    assert observe(S.running, 1, UP, one).message == "finished at step 6, loss 0.5"
