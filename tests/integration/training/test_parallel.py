"""Data parallel on two CPU processes (gloo) against one process, same global batch, and
checkpoints that resume at another world size. The agent runs in-process (run()); the recipe
runs as its child: torchrun for 2 processes, python for 1."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.parallel import SMALL, Job, losses, same_losses
from training.agent.main import run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method, micro, strategy", [
    ("lora", 1, "ddp"),  # micro batch 1: gradient accumulation under no_sync
    ("full", 0, "fsdp"),  # FSDP2 fully_shard per decoder layer
    ("lora", 0, "fsdp"),  # LoRA on a base too big for one GPU: the base sharded too
])
def test_two_processes_match_one_step_by_step(file_store, tmp_path, method, micro, strategy):
    fields = dict(SMALL, method=method, micro_batch_size=micro, max_steps=4, checkpoint_every_steps=10**6,
                  strategy=strategy)
    one = Job(file_store, f"j-one-{method}-{strategy}", nproc_per_node=1, **fields)
    two = Job(file_store, f"j-two-{method}-{strategy}", nproc_per_node=2, **fields)
    assert run(one.uri, tmp_path / "one") == 0
    assert run(two.uri, tmp_path / "two") == 0
    assert "x1 (single)" in one.log() and f"x2 ({strategy})" in two.log()
    # FSDP never loads the whole model on every rank: rank 0 reads it, the others get shards.
    assert ("read once on rank 0" in two.log()) == (strategy == "fsdp")
    same_losses(losses(two, 1), losses(one, 1), tol=1e-4)
    assert two.read("status.json")["final_loss"] == pytest.approx(one.read("status.json")["final_loss"], abs=1e-4)
    files = {f["path"] for f in two.read("final/MANIFEST.json")["files"]}
    assert ("model.safetensors" if method == "full" else "adapter_model.safetensors") in files


@pytest.mark.parametrize("method, first, then", [("full", 2, 1), ("lora", 1, 2)])
def test_a_checkpoint_resumes_at_another_world_size(file_store, tmp_path, method, first, then):
    fields = dict(SMALL, method=method, max_steps=6, checkpoint_every_steps=3)
    reference = Job(file_store, f"j-ref-{method}", nproc_per_node=1, **fields)
    assert run(reference.uri, tmp_path / "ref") == 0
    job = Job(file_store, f"j-reshard-{method}", nproc_per_node=first, **fields)
    assert run(job.uri, tmp_path / "a1") == 0
    assert job.manifests() == [3] and job.read("checkpoints/step-3/MANIFEST.json")["world_size"] == first
    # The machine went away after step 3: only that checkpoint is in the store.
    job.store.delete(f"{job.prefix}/final/")
    job.write_spec(attempt=2, nproc_per_node=then)
    assert run(job.uri, tmp_path / "a2") == 0
    assert f"resuming from checkpoint step-3 (taken on {first} process(es))" in job.log(2)
    same_losses(losses(job, 2), {s: v for s, v in losses(reference, 1).items() if s > 3}, tol=1e-4)
    assert job.read("final/MANIFEST.json")["world_size"] == then


def test_the_recipe_trains_standalone(tmp_path):
    """`python -m training.recipes.sft --spec FILE`: a laptop, no agent, no store."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"model": "tiny", "data": "demo", "seq_len": 32, "batch_size": 2,
                                "max_steps": 4, "checkpoint_every_steps": 2}))
    out = subprocess.run([sys.executable, "-m", "training.recipes.sft", "--spec", str(spec),
                          "--workdir", str(tmp_path / "run")], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "run/final/adapter_model.safetensors").exists()
    assert (tmp_path / "run/checkpoints/step-2/state.json").exists()
    assert json.loads((tmp_path / "run/outcome.json").read_text())["result"] == "done"


def test_the_bundle_alone_trains_on_two_processes(file_store, tmp_path):
    """What the GPU machine gets (workers/providers/bundle.py) is enough for torchrun and the
    recipe: the agent and its ranks import from the unpacked bundle, nothing else of the repo."""
    import io
    import os
    import zipfile

    from workers.providers.bundle import build_bundle

    machine = tmp_path / "machine"
    zipfile.ZipFile(io.BytesIO(build_bundle())).extractall(machine)
    where = subprocess.run([sys.executable, "-c", "import training.recipes.runner as r; print(r.__file__)"],
                           cwd=machine, env={**os.environ, "PYTHONPATH": str(machine)}, capture_output=True,
                           text=True, check=True).stdout
    assert where.startswith(str(machine))
    job = Job(file_store, "j-bundle", nproc_per_node=2, max_steps=2, **SMALL)
    agent = subprocess.Popen([sys.executable, "-m", "training.agent", "--spec", job.uri, "--workdir",
                              str(tmp_path / "work")], cwd=machine, env={**os.environ, "PYTHONPATH": str(machine)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = agent.communicate(timeout=240)[0].decode()
    assert agent.returncode == 0, out[-3000:]
    assert "x2 (ddp)" in job.log() and job.read("final/MANIFEST.json")["world_size"] == 2
