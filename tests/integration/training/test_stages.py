"""The stage loop: stages run in order, each in its own folder, the next one given the previous
one's final/; a finished stage is skipped by a later attempt, which still hands its result on."""

from __future__ import annotations

import pytest

from tests.support.parallel import SMALL, Job
from training import recipes
from training.agent.main import run

pytestmark = pytest.mark.slow


def test_stages_run_in_order_and_a_finished_stage_is_skipped(file_store, tmp_path, monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "after", "tests.integration.training.second_stage:AfterSFT")
    job = Job(file_store, "j-stages", stages=["sft", "after"], max_steps=2, checkpoint_every_steps=10**6, **SMALL)
    assert run(job.uri, tmp_path / "a1") == 0
    for stage in ("sft", "after"):
        assert job.read(f"stages/{stage}/final/MANIFEST.json")["stage"] == stage
    assert job.read("status.json")["output_uri"] == f"{file_store}/jobs/j-stages/stages/after/final/"
    job.store.delete(f"{job.prefix}/stages/after/final/")  # the machine went away in stage 2
    job.write_spec(attempt=2)
    assert run(job.uri, tmp_path / "a2") == 0
    log = job.log(2)
    assert "sft: final/ is in the store (step 2): skipped" in log
    assert "-m tests.integration.training.second_stage" in log
    assert job.read("stages/after/final/MANIFEST.json")["step"] == 2
