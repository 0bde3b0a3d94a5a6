"""What the monitor should do about one attempt (pure): the agent's last word and the machine's
state in, one move out.

The agent's status.json is believed first (it knows why it stopped); the machine's state only
speaks when the agent said nothing: a spot reclaim shows as `Server.SpotInstanceTermination`,
anything else that vanished is a lost instance.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.job import AgentStatus
from schemas.status import FailureCause, JobStatus
from workers.providers.base import Machine

S = JobStatus


@dataclass(frozen=True)
class Move:
    target: JobStatus
    kind: str  # the event's kind and the notification's
    message: str
    cause: FailureCause | None = None
    end_reason: str | None = None  # the attempt ends with this reason; None: it goes on
    terminate: bool = False  # the machine may still be up: terminate it


def _stopped(status: JobStatus, stop_reason: str | None) -> JobStatus:
    return S.stopped_at_cap if stop_reason == "cap" else S.cancelled


def observe(status: JobStatus, attempt: int, machine: Machine | None,
            agent: AgentStatus | None, stop_reason: str | None = None) -> Move | None:
    """`machine` None: the provider no longer knows the instance (gone)."""
    if status not in (S.running, S.stopping, S.provisioning):
        return None
    said = agent if agent is not None and agent.attempt == attempt else None
    if said is not None:
        if said.state == "succeeded":
            return Move(S.succeeded, "succeeded", f"finished {said.stage + ' ' if said.stage else ''}at step {said.step}"
                        + (f", loss {said.final_loss:.4g}" if said.final_loss is not None else "")
                        + (f"; output at {said.output_uri}" if said.output_uri else ""),
                        end_reason="succeeded", terminate=True)
        if said.state == "failed":
            tail = (said.error or "no error text").strip().splitlines()[-1:] or [""]
            return Move(S.failed, "failed", f"the agent failed: {tail[0]}",
                        cause=FailureCause.agent_error, end_reason="agent failed", terminate=True)
        if said.state == "deadline":
            return Move(S.stopped_at_cap, "stopped_at_cap",
                        f"the agent stopped at its money deadline (step {said.step})",
                        end_reason="deadline", terminate=True)
        if said.state == "stopped":
            target = _stopped(status, stop_reason)
            return Move(target, target.value, f"the agent stopped as asked (step {said.step})",
                        end_reason="stopped", terminate=True)
        if said.state == "interrupted":
            if status == S.stopping:
                target = _stopped(status, stop_reason)
                return Move(target, target.value, "interrupted while stopping",
                            end_reason="interrupted", terminate=True)
            ckpt = said.last_checkpoint_step
            return Move(S.interrupted, "interrupted",
                        f"spot interruption at step {said.step}; last checkpoint "
                        f"{'step ' + str(ckpt) if ckpt is not None else 'none'}",
                        end_reason="interrupted", terminate=True)
    if machine is not None and machine.live:
        return None
    if machine is not None and machine.interrupted:
        if status == S.stopping:
            target = _stopped(status, stop_reason)
            return Move(target, target.value, "the machine was reclaimed while stopping",
                        end_reason="interrupted")
        return Move(S.interrupted, "interrupted", "the spot machine was reclaimed by AWS",
                    end_reason="interrupted")
    gone = "is gone" if machine is None else f"is {machine.state}"
    return Move(S.failed, "failed", f"the machine {gone} and the agent left no status",
                cause=FailureCause.instance_lost, end_reason="instance lost")
