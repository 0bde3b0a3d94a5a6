"""Helpers for multi-process training on CPU: torchrun with the gloo backend stands in for a
machine's GPUs (`nproc_per_node=2`), the tiny model and the demo data, a file:// store."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.agent import Job, start_agent

# Few, short steps: the suite shares two cores. batch 3 over 2 ranks deals an uneven batch.
SMALL = dict(seq_len=32, batch_size=3, lora_dropout=0.0)


def losses(job: Job, attempt: int, run: str | None = None) -> dict[int, float]:
    blob = job.store.read_bytes(f"{job.prefix}/logs/metrics-attempt-{attempt}.jsonl") or b""
    rows = [json.loads(line) for line in blob.decode().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r.get("run") == run}


def children_of(agent_pid: int) -> list[int]:
    """Live processes the agent started (torchrun and its ranks carry TRAINOPS_AGENT_PID)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            env = environ.read_bytes().split(b"\0")
            stat = (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if f"TRAINOPS_AGENT_PID={agent_pid}".encode() in env and stat[0] != "Z":
            found.append(int(environ.parent.name))
    return found


def same_losses(got: dict[int, float], want: dict[int, float], tol: float) -> float:
    assert sorted(got) == sorted(want), f"steps {sorted(got)} != {sorted(want)}"
    worst = max(abs(got[s] - want[s]) for s in got)
    assert worst <= tol, f"losses differ by {worst:.2e}: {got} vs {want}"
    return worst


__all__ = ["Job", "SMALL", "children_of", "losses", "same_losses", "start_agent"]
