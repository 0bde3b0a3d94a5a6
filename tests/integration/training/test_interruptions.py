"""A stop or a rehearsed spot notice reaches every rank: one coordinated checkpoint, then all
ranks exit; the agent as the GPU machine runs it (a subprocess), two gloo processes."""

from __future__ import annotations

import time

import pytest

from tests.support.parallel import SMALL, Job, children_of, start_agent

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("control, state, code", [
    ({"stop": True}, "stopped", 4),
    ({"interrupt": True}, "interrupted", 3),  # the spot-notice path, rehearsed
])
def test_stop_ends_every_rank_after_one_checkpoint(file_store, tmp_path, control, state, code):
    job = Job(file_store, f"j-ranks-{state}", nproc_per_node=2, epochs=1000,
              checkpoint_every_steps=10**6, **SMALL)
    agent = start_agent(job, tmp_path / "work")
    job.wait_training(min_step=2, timeout=120)
    ranks = children_of(agent.pid)
    assert len(ranks) >= 3, f"torchrun and two ranks expected, found {ranks}"  # torchrun + 2 ranks
    job.control(**control)
    out = agent.communicate(timeout=120)[0].decode()
    assert agent.returncode == code, out[-3000:]
    status = job.read("status.json")
    assert status["state"] == state and status["step"] >= 2 and status["error"] is None
    assert job.manifests() == [status["step"]] == [status["last_checkpoint_step"]]  # exactly one
    manifest = job.read(f"checkpoints/step-{status['step']}/MANIFEST.json")
    assert manifest["world_size"] == 2 and {"weights.safetensors", "optimizer.pt"} <= {f["path"] for f in manifest["files"]}
    deadline = time.monotonic() + 30
    while children_of(agent.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert children_of(agent.pid) == [], "a rank outlived the agent"
    assert job.read("progress.json")["phase"] == "done"


def test_an_unknown_stage_is_one_clear_line(file_store, tmp_path):
    from training.agent.main import run

    job = Job(file_store, "j-stage", stages=["sft", "dpo"])
    assert run(job.uri, tmp_path / "w") == 2
    status = job.read("status.json")
    assert status["state"] == "failed" and "unknown stage 'dpo'; known stages: eval, prep, rl, sft" in status["error"]
