"""A sweep of three runs on a machine with two "GPUs" (gloo processes): two run at once, the
third queues; each run its own checkpoints, final and metrics; a finished run is never rerun and
an unfinished one resumes from its own checkpoint."""

from __future__ import annotations

import pytest

from tests.support.parallel import SMALL, Job, losses
from training.agent.main import run

pytestmark = pytest.mark.slow
RUNS = [{"name": "lr-1e-4", "overrides": {"learning_rate": 1e-4}},
        {"name": "lr-1e-3", "overrides": {"learning_rate": 1e-3}},
        {"name": "lr-1e-2", "overrides": {"learning_rate": 1e-2, "seed": 7}}]


def test_a_sweep_of_three_runs_on_two_gpus(file_store, tmp_path):
    job = Job(file_store, "j-sweep", nproc_per_node=2, runs=RUNS, max_steps=4, checkpoint_every_steps=2, **SMALL)
    assert run(job.uri, tmp_path / "a1") == 0
    log = job.log()
    assert "3 run(s), 2 at a time, 1 process(es) each" in log
    # The third run waited for a free slot: it started after one of the first two ended.
    first_end = min(log.index(f"run {e['name']}: succeeded") for e in RUNS[:2])
    assert log.index("units/lr-1e-2/spec.json") > first_end
    status = job.read("status.json")
    assert status["state"] == "succeeded" and status["output_uri"] == f"{file_store}/jobs/j-sweep/runs/"
    curves = {}
    for entry in RUNS:
        name = entry["name"]
        final = job.read(f"runs/{name}/final/MANIFEST.json")
        assert final["run"] == name and final["step"] == 4
        assert final["training_fields"]["learning_rate"] == entry["overrides"]["learning_rate"]
        assert job.read(f"runs/{name}/checkpoints/step-2/MANIFEST.json")["step"] == 2
        curves[name] = losses(job, 1, run=name)
        assert sorted(curves[name]) == [1, 2, 3, 4]
    assert len({round(c[4], 6) for c in curves.values()}) == 3  # each run trained its own settings
    progress = job.read("progress.json")
    assert [(r["name"], r["state"], r["step"], r["total_steps"]) for r in progress["runs"]] == \
        [(e["name"], "succeeded", 4, 4) for e in RUNS]
    assert job.store.list(f"{job.prefix}/checkpoints/") == []  # a sweep keeps nothing at the top

    # Attempt 2 after losing the last run's final/: the others are skipped, it resumes at step 2.
    job.store.delete(f"{job.prefix}/runs/lr-1e-2/final/")
    job.write_spec(attempt=2)
    assert run(job.uri, tmp_path / "a2") == 0
    log = job.log(2)
    assert log.count("final/ is in the store (step 4): skipped") == 2
    assert "runs/lr-1e-2: resuming from checkpoint step-2" in log
    again = losses(job, 2, run="lr-1e-2")
    assert sorted(again) == [3, 4] and losses(job, 2, run="lr-1e-4") == {}
    assert max(abs(again[s] - curves["lr-1e-2"][s]) for s in again) <= 1e-4
