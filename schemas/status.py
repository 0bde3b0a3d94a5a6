"""A job's lifecycle: its statuses, the one table of legal moves, and why a job failed.

Every status write in the runner goes through `check_transition` and then a conditional update
(`... WHERE id = ? AND status = ?`), so a move that is not in TRANSITIONS can never be written and
two workers or two clicks can never both make the same move.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    # Quoted and waiting for a person to approve or reject it in the thread (or the terminal).
    awaiting_approval = "awaiting_approval"
    # Approved; the provision task has been (or is about to be) enqueued. No machine yet.
    approved = "approved"
    # A worker is launching a machine: first launch, a fallback, or a recovery after interruption.
    provisioning = "provisioning"
    # A machine is up and the agent is (or will shortly be) training.
    running = "running"
    # A graceful stop was asked for (cap, a person): the agent checkpoints and exits.
    stopping = "stopping"
    # The spot machine was taken back; waiting to relaunch from the last verified checkpoint.
    interrupted = "interrupted"
    # The agent finished and wrote its output. Terminal.
    succeeded = "succeeded"
    # Ended without a result; `failure_cause` says why (no capacity, setup, agent error...). Terminal.
    failed = "failed"
    # A person cancelled it; its machine is terminated. Terminal.
    cancelled = "cancelled"
    # The dollar cap was reached; the last checkpoint is kept, the machine terminated. Terminal.
    stopped_at_cap = "stopped_at_cap"
    # Someone with the right to decide said no. Terminal.
    rejected = "rejected"
    # Nobody decided before the quote's time to live ran out (prices move). Terminal.
    expired = "expired"

    def is_terminal(self) -> bool:
        return not TRANSITIONS[self]

    def is_live(self) -> bool:
        """Live: may still cost money or become a run (everything that is not terminal)."""
        return not self.is_terminal()


S = JobStatus

# The one table of legal moves: status -> the statuses it may move to. A status with no moves is
# terminal. `cancelled` is reachable from every live status (a person may always stop a job).
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.awaiting_approval: frozenset({S.approved, S.rejected, S.expired, S.cancelled}),
    S.approved: frozenset({S.provisioning, S.failed, S.cancelled}),
    # provisioning -> failed: every option and zone was out of capacity, a quota, a bad setup.
    # provisioning -> interrupted: the spot machine was reclaimed before the agent started.
    S.provisioning: frozenset({S.running, S.failed, S.cancelled, S.interrupted, S.stopped_at_cap}),
    S.running: frozenset(
        {S.stopping, S.interrupted, S.succeeded, S.failed, S.cancelled, S.stopped_at_cap}
    ),
    S.stopping: frozenset({S.succeeded, S.failed, S.cancelled, S.stopped_at_cap}),
    # interrupted -> provisioning is the recovery; -> stopped_at_cap when no money is left for it.
    S.interrupted: frozenset({S.provisioning, S.failed, S.cancelled, S.stopped_at_cap}),
    S.succeeded: frozenset(),
    S.failed: frozenset(),
    S.cancelled: frozenset(),
    S.stopped_at_cap: frozenset(),
    S.rejected: frozenset(),
    S.expired: frozenset(),
}

LIVE_STATUSES: frozenset[JobStatus] = frozenset(s for s in JobStatus if s.is_live())
# Statuses in which a machine may exist and cost money.
MACHINE_STATUSES: frozenset[JobStatus] = frozenset(
    {S.provisioning, S.running, S.stopping, S.interrupted}
)


class IllegalTransition(Exception):
    """A move the transition table does not allow: a bug in the caller, never a user's mistake."""

    def __init__(self, current: JobStatus, target: JobStatus):
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (terminal)"
        super().__init__(f"illegal move {current.value} -> {target.value}; allowed: {allowed}")
        self.current = current
        self.target = target


def check_transition(current: JobStatus | str, target: JobStatus | str) -> None:
    current, target = JobStatus(current), JobStatus(target)
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)


class FailureCause(StrEnum):
    # Every option and zone the approval allowed was out of capacity.
    no_capacity = "no_capacity"
    # A check before launching said it cannot work (no feasible option, nothing within budget).
    precheck = "precheck"
    # An account limit: the spot or on-demand vCPU quota is too small for the instance.
    quota = "quota"
    # The machine could not be set up: bad AMI, instance profile, subnet, an unnamed launch error.
    setup = "setup"
    # The agent reported a failure (its error tail is in the events).
    agent_error = "agent_error"
    # The machine vanished without the agent's last word (terminated outside trainops).
    instance_lost = "instance_lost"
    # More interruptions than `max_recoveries` allows.
    recoveries_exhausted = "recoveries_exhausted"
    # Cancelled while recovering from an interruption (recorded so the leak sweep can be audited).
    cancelled_during_recovery = "cancelled_during_recovery"
    # The monitor or a worker hit a bug; the traceback is in the worker log.
    internal = "internal"
