"""The prep, rl and eval stages run for real on the CPU with the tiny model: GRPO learns, eval
sees the difference, best_of_n keeps top_k of n_samples, a stopped rl run resumes exactly, a bad
reward is one line before anything trains."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from schemas.errors import UserError
from schemas.job import JobSpec
from training.recipes import recipe_class

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
# `numeric` (share of digits) is learnable from a random start: every group of samples differs
# a little, so GRPO always has a direction. method=full: the tiny random model's output layer
# is out of LoRA's reach (see docs/rl.md), so learning is measured on full weights.
LEARN = dict(data="demo-rl", reward="numeric", method="full", batch_size=4, n_samples=8, max_new_tokens=16,
             max_steps=20, learning_rate=0.01, seq_len=64, eval_samples=16, seed=1234)


def spec(**fields) -> JobSpec:
    return JobSpec(job_id="rl", store_uri="file:///unused", model="tiny", **fields)


def run(stage: str, job: JobSpec, workdir: Path, cache_dir: Path, resume: Path | None = None, stop_at=None):
    """setup + train as the agent drives a recipe; returns (recipe, result, every step's line)."""
    recipe = recipe_class(stage)(job, workdir, cache_dir=cache_dir)
    recipe.setup(resume)
    lines = []

    def on_step(step, loss, tokens):
        lines.append({"step": step, "loss": loss, "tokens": tokens, **getattr(recipe, "metrics", {})})
        return "stopped" if step == stop_at else None

    return recipe, recipe.train(on_step), lines


@pytest.fixture(scope="module")
def learned(tmp_path_factory, cache_dir):
    workdir = tmp_path_factory.mktemp("grpo")
    recipe, result, lines = run("rl", spec(**LEARN), workdir, cache_dir)
    assert result == "done"
    return recipe.save_final(), lines


def test_grpo_raises_the_mean_reward(learned):
    final, lines = learned
    rewards = [line["reward"] for line in lines]
    assert [line["step"] for line in lines] == list(range(1, 21))
    assert all(line["stage"] == "rl" and line["tokens"] > 0 for line in lines)
    first, last = np.mean(rewards[:5]), np.mean(rewards[-5:])
    assert last > first + 0.2, f"mean reward {first:.3f} over steps 1-5, {last:.3f} over 16-20"
    summary = json.loads((final / "rl.json").read_text())
    assert [h["reward"] for h in summary["history"]] == pytest.approx(rewards)
    assert (final / "model.safetensors").exists() and (final / "tokenizer.json").exists()


def test_eval_before_and_after_rl_differ_and_are_recorded(learned, tmp_path, cache_dir):
    final, _ = learned
    before_spec = spec(**LEARN)
    before, result, before_lines = run("eval", before_spec, tmp_path / "before", cache_dir)
    assert result == "done"
    after, result, _ = run("eval", spec(**{**LEARN, "init_from": str(final)}), tmp_path / "after", cache_dir)
    assert result == "done"
    reports = [json.loads((r.save_final() / "eval.json").read_text()) for r in (before, after)]
    assert [r["heldout"] for r in reports] == [16, 16] and all(r["scored"] == 16 for r in reports)
    assert reports[1]["mean_reward"] > reports[0]["mean_reward"] + 0.2, reports
    assert reports[0]["eval_loss"] != reports[1]["eval_loss"]
    assert reports[1]["init_from"] == str(final) and len(reports[1]["samples"]) == 8
    assert before_lines[-1]["stage"] == "eval" and before_lines[-1]["mean_reward"] == reports[0]["mean_reward"]
    # the same weights score the same (greedy decoding): the difference is the training
    again, _, _ = run("eval", before_spec, tmp_path / "again", cache_dir)
    assert again.figures() == before.figures()


def test_best_of_n_keeps_exactly_top_k_of_n_samples(tmp_path, cache_dir):
    job = spec(data="demo-rl", rl_method="best_of_n", reward="numeric", n_samples=4, top_k=2, rounds=2,
               num_tasks=6, batch_size=4, max_new_tokens=8, seq_len=48, learning_rate=0.01, eval_samples=16)
    recipe, result, lines = run("rl", job, tmp_path, cache_dir)
    assert result == "done" and recipe.total_steps == 2 * 3  # 6 tasks x 2 kept / 4 per step, 2 rounds
    for number in (0, 1):
        rows = [json.loads(x) for x in recipe.round_path(number).read_text().splitlines()]
        assert sorted({r["task"] for r in rows}) == list(range(6))
        for task in range(6):
            group = [r for r in rows if r["task"] == task]
            kept = [r["reward"] for r in group if r["kept"]]
            dropped = [r["reward"] for r in group if not r["kept"]]
            assert len(group) == 4 and len(kept) == 2 and min(kept) >= max(dropped)
    assert [line["round"] for line in lines] == [0, 0, 0, 1, 1, 1]
    final = recipe.save_final()
    assert (final / "adapter_model.safetensors").exists()
    assert json.loads((final / "rl.json").read_text())["top_k"] == 2


def test_rl_resumes_from_its_checkpoint_exactly(tmp_path, cache_dir):
    """Stop at step 3 (on_step names a reason), checkpoint, and a new recipe continues from it:
    steps 4-6 are the very steps an uninterrupted run takes (TRL restores weights, optimizer,
    scheduler, RNG and data position)."""
    job = spec(data="demo-rl", reward="numeric", batch_size=2, n_samples=4, max_new_tokens=8, max_steps=6,
               learning_rate=0.01, seq_len=48)  # LoRA, the default
    _, result, whole = run("rl", job, tmp_path / "whole", cache_dir)
    stopped, result_stopped, head = run("rl", job, tmp_path / "part", cache_dir, stop_at=3)
    assert result == "done" and result_stopped == "stopped" and [x["step"] for x in head] == [1, 2, 3]
    checkpoint = stopped.save_checkpoint()
    assert (checkpoint / "adapter_model.safetensors").exists() and (checkpoint / "state.json").exists()
    assert json.loads((checkpoint / "state.json").read_text())["spec_hash"] == job.spec_hash()
    resumed, result, tail = run("rl", job, tmp_path / "again", cache_dir, resume=checkpoint)
    assert result == "done" and [x["step"] for x in tail] == [4, 5, 6]
    assert [(x["loss"], x["reward"]) for x in tail] == [(x["loss"], x["reward"]) for x in whole[3:]]
    assert [h["step"] for h in resumed.history()] == [1, 2, 3, 4, 5, 6]


def test_prep_writes_the_split_and_the_cache_sft_reads(tmp_path):
    from training.recipes.data import prepare
    from training.recipes.model import load_tokenizer

    job = spec(data="demo-rl", eval_samples=16, seq_len=64)
    cache = tmp_path / "cache"
    recipe, result, lines = run("prep", job, tmp_path / "prep", cache)
    final = recipe.save_final()
    summary = json.loads((final / "prep.json").read_text())
    assert result == "done" and lines[0]["stage"] == "prep"
    assert (summary["train_rows"], summary["heldout_rows"]) == (240, 16)
    heldout = [json.loads(x) for x in (final / "heldout.jsonl").read_text().splitlines()]
    cached = sorted(cache.glob("tokens-*.npz"))
    assert len(cached) == 1
    packed = prepare(job, load_tokenizer(job), cache)  # sft's data phase: a cache hit, no new file
    assert sorted(cache.glob("tokens-*.npz")) == cached
    assert int(packed.attention_mask.sum()) == summary["train_tokens"]
    assert len(heldout) == 16


def test_a_bad_reward_stops_the_stage_before_training(tmp_path, cache_dir):
    (tmp_path / "r.py").write_text("def score(prompt, completion, **row):\n    return 1 / 0\n")
    with pytest.raises(UserError, match="raised on a sample row") as caught:
        run("rl", spec(data="demo-rl", reward=f"{tmp_path}/r.py:score"), tmp_path / "w", cache_dir)
    assert "\n" not in str(caught.value)


def test_a_stage_runs_alone_from_the_command_line(tmp_path):
    """`python -m training.recipes.rl`: a bad reward is one line and exit 2."""
    path = tmp_path / "spec.json"
    path.write_text(spec(data="demo-rl", reward="nope").model_dump_json())
    out = subprocess.run([sys.executable, "-m", "training.recipes.rl", "--spec", str(path),
                          "--workdir", str(tmp_path / "w")], cwd=REPO, capture_output=True, text=True,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("rl: unknown reward 'nope'; valid: exact")


def test_a_pipeline_prep_sft_eval_rl_eval_hands_outputs_on(tmp_path):
    """What the agent's stage loop does, by hand: each stage's final output is the next one's
    init_from. The sft adapter is what eval and rl load (eval's loss of the reference answers
    drops after sft), and rl continues that adapter."""
    cache = tmp_path / "cache"
    job = spec(data="demo-rl", eval_samples=16, seq_len=64, batch_size=8, max_steps=12, learning_rate=1e-2,
               reward="exact", n_samples=4, max_new_tokens=8, num_tasks=8)
    prep, _, _ = run("prep", job, tmp_path / "prep", cache)
    prep.save_final()
    sft, result, _ = run("sft", job, tmp_path / "sft", cache)
    assert result == "done"
    adapter = sft.save_final()
    base, _, _ = run("eval", job, tmp_path / "eval-base", cache)
    tuned, _, _ = run("eval", job.model_copy(update={"init_from": str(adapter)}), tmp_path / "eval-sft", cache)
    assert tuned.figures()["eval_loss"] < base.figures()["eval_loss"] - 0.5, (base.figures(), tuned.figures())
    rl_job = job.model_copy(update={"init_from": f"file://{adapter}", "batch_size": 4})  # 8 tasks: 2 steps
    rl, result, lines = run("rl", rl_job, tmp_path / "rl", cache)
    assert result == "done" and [x["step"] for x in lines] == [1, 2]
    final = rl.save_final()
    assert json.loads((final / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert json.loads((final / "rl.json").read_text())["init_from"] == f"file://{adapter}"
    after, _, _ = run("eval", job.model_copy(update={"init_from": str(final)}), tmp_path / "eval-rl", cache)
    assert after.figures()["eval_loss"] < base.figures()["eval_loss"] - 0.5


def test_best_of_n_resumes_mid_round_on_the_samples_it_chose(tmp_path, cache_dir):
    job = spec(data="demo-rl", rl_method="best_of_n", reward="numeric", n_samples=4, top_k=2, rounds=2,
               num_tasks=6, batch_size=4, max_new_tokens=8, seq_len=48, learning_rate=0.01, eval_samples=16)
    whole, _, all_steps = run("rl", job, tmp_path / "whole", cache_dir)
    part, result, _ = run("rl", job, tmp_path / "part", cache_dir, stop_at=4)  # round 1, its first step
    assert result == "stopped"
    checkpoint = part.save_checkpoint()
    assert (checkpoint / "rounds" / "round-1.jsonl").exists()
    again, result, tail = run("rl", job, tmp_path / "again", cache_dir, resume=checkpoint)
    assert result == "done" and [x["step"] for x in tail] == [5, 6]
    assert again.round_path(1).read_text() == whole.round_path(1).read_text()
    assert [x["loss"] for x in tail] == pytest.approx([x["loss"] for x in all_steps[4:]], rel=1e-6)
