"""A pipeline through the real agent (`python -m training.agent`): prep, sft, the eval before rl,
rl from sft's adapter, the eval after it; each stage a child process speaking the runner's
protocol. Interrupted in rl, the next attempt resumes rl from its checkpoint and leaves sft be."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.agent import Job, interrupt_frozen, start_agent
from tests.support.iam import allowed, job_session, policy, shared_instance_role

pytestmark = pytest.mark.slow
# 16 tasks, 4 a step: rl has 4 steps; sft 4 steps; 8 held-out rows scored in 2 eval steps.
PIPELINE = dict(stages=["prep", "sft", "eval", "rl", "eval"], data="demo-rl", eval_samples=8,
                reward="numeric", n_samples=4, max_new_tokens=8, num_tasks=16, batch_size=4,
                max_steps=4, learning_rate=1e-2)


def lines(job: Job, attempt: int) -> list[dict]:
    blob = job.store.read_bytes(f"{job.prefix}/logs/metrics-attempt-{attempt}.jsonl") or b""
    return [json.loads(x) for x in blob.decode().splitlines() if x.strip()]


def finish(agent, timeout: float = 600) -> tuple[int, str]:
    out, _ = agent.communicate(timeout=timeout)
    return agent.returncode, out.decode(errors="replace")


def test_a_pipeline_runs_every_stage_to_the_end(file_store, tmp_path):
    job = Job(file_store, "j-pipe", **PIPELINE)
    code, out = finish(start_agent(job, tmp_path / "a1"))
    assert code == 0, out[-3000:]
    status = job.read("status.json")
    assert status["state"] == "succeeded"
    assert status["output_uri"] == f"{file_store}/jobs/j-pipe/stages/rl/final/"  # the last model
    # ... and the step and loss it reports are rl's, not those of the eval after it.
    rl_final = job.read("stages/rl/final/MANIFEST.json")
    assert (status["stage"], status["step"], status["final_loss"]) == ("rl", 4, rl_final["loss"])
    for key in ("prep", "sft", "eval", "rl", "eval-2"):
        assert job.read(f"stages/{key}/final/MANIFEST.json")["stage"] == key
    rl = job.read("stages/rl/final/rl.json")
    assert rl["init_from"] == f"{file_store}/jobs/j-pipe/stages/sft/final/"
    assert job.read("stages/eval/final/eval.json")["init_from"] == rl["init_from"]
    assert job.read("stages/eval-2/final/eval.json")["init_from"] == f"{file_store}/jobs/j-pipe/stages/rl/final/"
    rows = lines(job, 1)
    assert rows[0]["stage"] == "prep"
    assert {r["stage"] for r in rows} == {"prep", "sft", "eval", "rl"}
    steps = [r for r in rows if r["stage"] == "rl"]
    assert len(steps) == 4 and all(isinstance(r["reward"], float) for r in steps)
    evals = [r["eval"] for r in rows if r["stage"] == "eval"]
    assert [e["label"] for e in evals] == ["before_rl"] * 2 + ["after_rl"] * 2
    assert all(0.0 <= e["mean_reward"] <= 1.0 and e["loss"] > 0 for e in evals)
    # Every file the agent and its stages wrote is one it may write on AWS: with this job's
    # per-job credentials, and with a machine's role where a deployment has no job role.
    written = [k for k in job.store.list("") if k != f"{job.prefix}/spec.json"]
    refused = [k for k in written
               if not allowed(policy("job_role"), "s3:PutObject", k, job_session("j-pipe"))
               or not allowed(shared_instance_role(), "s3:PutObject", k)]
    assert any(k.startswith("heartbeats/") for k in written) and not refused, refused


def test_an_interrupted_pipeline_resumes_rl_and_does_not_rerun_sft(file_store, tmp_path):
    job = Job(file_store, "j-pipe-int", **{**PIPELINE, "max_steps": 6, "num_tasks": 24},
              checkpoint_every_steps=1)
    agent = start_agent(job, tmp_path / "a1")
    deadline = time.monotonic() + 600
    while not [k for k in job.store.list(f"{job.prefix}/stages/rl/checkpoints/") if k.endswith("MANIFEST.json")]:
        assert agent.poll() is None, finish(agent)[1][-3000:]
        assert time.monotonic() < deadline, "waited 600 s for rl's first checkpoint in the store"
        time.sleep(0.05)
    sft_final = job.store.read_bytes(f"{job.prefix}/stages/sft/final/MANIFEST.json")
    interrupt_frozen(job, agent, tmp_path / "a1")  # mid-rl on any machine, fast or slow
    code, out = finish(agent)
    assert code == 3, out[-3000:]
    from schemas.checkpoints import manifested_steps

    saved = manifested_steps(job.store, f"{job.prefix}/stages/rl")
    assert saved and saved[0] < 6, saved
    job.store.delete(f"{job.prefix}/control.json")
    job.write_spec(attempt=2)
    code, out = finish(start_agent(job, tmp_path / "a2"))
    assert code == 0, out[-3000:]
    log = job.log(2)
    assert "sft: final/ is in the store" in log and f"resuming from checkpoint step-{saved[0]}" in log
    assert job.store.read_bytes(f"{job.prefix}/stages/sft/final/MANIFEST.json") == sft_final
    second = lines(job, 2)
    assert not [r for r in second if r["stage"] in ("prep", "sft")]
    assert [r["step"] for r in second if r["stage"] == "rl"] == list(range(saved[0] + 1, 7))
    assert job.read("stages/rl/final/MANIFEST.json")["step"] == 6


def test_a_team_reward_travels_with_the_job_and_a_raising_one_fails_before_training(file_store, tmp_path):
    from workers.providers.user_files import ship_reward

    (tmp_path / "good.py").write_text("def score(prompt, completion, **row):\n    return float(len(completion) > 0)\n")
    (tmp_path / "bad.py").write_text("def score(prompt, completion, **row):\n    return 1 / 0\n")
    good = Job(file_store, "j-team-reward", stages=["eval"], data="demo-rl", eval_samples=4,
               reward=f"{tmp_path}/good.py:score", max_new_tokens=4)
    good.write_spec(reward=ship_reward(good.store, good.spec).reward)
    (tmp_path / "good.py").unlink()  # the machine has only the store's copy
    code, out = finish(start_agent(good, tmp_path / "w1"))
    assert code == 0, out[-3000:]
    assert good.read("final/eval.json")["reward"].startswith(
        f"{file_store}/jobs/j-team-reward/user/reward_")

    bad = Job(file_store, "j-bad-reward", stages=["sft", "rl"], data="demo-rl", reward=f"{tmp_path}/bad.py:score")
    bad.write_spec(reward=ship_reward(bad.store, bad.spec).reward)
    code, out = finish(start_agent(bad, tmp_path / "w2"))
    status = bad.read("status.json")
    assert code == 2 and status["state"] == "failed", out[-3000:]
    assert "raised on a sample row" in status["error"] and "ZeroDivisionError" in status["error"]
    assert "\n" not in status["error"]
    assert lines(bad, 1) == []  # nothing trained: sft never started
