"""A planted checkpoint must not run code. Every GPU machine can write any job's checkpoints (one
instance role), so one job could put a pickle whose __reduce__ calls exec into another job's
checkpoint and wait for that job's next machine to resume from it. The recipes read every .pt
file with weights_only=True: the resume is refused with one line and the payload never runs.

Each test first shows the planted file is a real exploit (a plain torch.load runs it, in a
separate process), then that the recipe's resume refuses it and nothing ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


class Payload:
    """Unpickling this calls exec, which writes `marker`: what an attacker's code would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def plant(path: Path, marker: Path) -> None:
    import torch

    torch.save({"state": {}, "param_groups": [], "rng": Payload(marker)}, path)


def assert_is_an_exploit(path: Path, tmp_path: Path) -> None:
    """A plain (pickle) load of a copy, in another process, runs the payload: the file is live."""
    probe = tmp_path / "probe.pt"
    marker = tmp_path / "probe-ran"
    plant(probe, marker)
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(probe)!r}, weights_only=False)"],
                   cwd=REPO, env=ENV, check=True, capture_output=True)
    assert marker.read_text() == "ran"


def recipe_cli(stage: str, spec: Path, workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"training.recipes.{stage}", "--spec", str(spec),
                           "--workdir", str(workdir), *extra],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("planted", ["optimizer.pt", "trainer_state.pt"])
def test_sft_resume_refuses_a_planted_pickle_and_runs_nothing(tmp_path, planted):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"model": "tiny", "data": "demo", "max_steps": 2, "checkpoint_every_steps": 1,
                                "seq_len": 32, "batch_size": 2}))
    first = recipe_cli("sft", spec, tmp_path / "first")
    assert first.returncode == 0, first.stderr
    checkpoint = tmp_path / "first" / "checkpoints" / "step-1"
    assert (checkpoint / planted).exists()
    assert_is_an_exploit(checkpoint / planted, tmp_path)
    marker = tmp_path / "resume-ran"
    plant(checkpoint / planted, marker)

    out = recipe_cli("sft", spec, tmp_path / "second", "--resume", str(checkpoint))

    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last == (f"sft: checkpoint file step-1/{planted} is refused: it holds more than tensors and "
                    "plain values (it names exec), and loading it could run code; resume from "
                    "another checkpoint or start the job from scratch")
    assert "Traceback" not in out.stderr
    assert not marker.exists()
    outcome = json.loads((tmp_path / "second" / "outcome.json").read_text())
    assert outcome["result"] == "bad_input" and "names exec" in outcome["error"]


def test_grpo_resume_refuses_a_planted_pickle_and_runs_nothing(tmp_path):
    """TRL's checkpoint: transformers reads the optimizer, scheduler and RNG files with
    weights_only=True; the recipe turns the refusal into one line. TRL's training_args.bin (a
    full pickle that resuming never reads) is not kept in the checkpoint at all."""
    import torch

    from schemas.errors import UserError
    from schemas.job import JobSpec
    from training.recipes import recipe_class

    torch.set_num_threads(1)
    job = JobSpec(job_id="rl", store_uri="file:///unused", model="tiny", data="demo-rl", reward="numeric",
                  batch_size=2, n_samples=2, max_new_tokens=4, max_steps=2, seq_len=48)
    recipe = recipe_class("rl")(job, tmp_path / "first", cache_dir=tmp_path / "cache")
    recipe.setup(None)
    assert recipe.train(lambda step, loss, tokens: "stopped" if step == 1 else None) == "stopped"
    checkpoint = recipe.save_checkpoint()
    assert not (checkpoint / "training_args.bin").exists()
    assert (checkpoint / "rng_state.pth").exists()  # read last on resume: every file before it passed
    marker = tmp_path / "resume-ran"
    plant(checkpoint / "rng_state.pth", marker)

    again = recipe_class("rl")(job, tmp_path / "second", cache_dir=tmp_path / "cache")
    again.setup(checkpoint)
    with pytest.raises(UserError) as refused:
        again.train(lambda step, loss, tokens: None)

    assert str(refused.value).startswith(f"checkpoint file {checkpoint.name} (TRL's optimizer, scheduler or "
                                         "RNG state) is refused: it holds more than tensors and plain "
                                         "values (it names exec)")
    assert "\n" not in str(refused.value)
    assert not marker.exists()
