"""The pure parts of multi-GPU training, sweeps and stages: spec fields, the store layout, the
strategy choice, the relay the agent writes and the slots a sweep gets. No training here."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from schemas.checkpoints import any_manifested, manifested_steps, unit_prefix
from schemas.errors import UserError
from schemas.job import JobSpec
from schemas.store import open_store

BASE = dict(job_id="j", store_uri="file:///tmp/x", model="tiny")


def test_a_job_without_sweep_or_stages_hashes_as_before():
    spec = JobSpec(**BASE)
    old_fields = [f for f in JobSpec.TRAINING_FIELDS if f not in ("runs", "stages")]
    before = hashlib.sha256(json.dumps({f: getattr(spec, f) for f in old_fields}, sort_keys=True,
                                       default=str).encode()).hexdigest()[:16]
    assert spec.spec_hash() == before
    swept = JobSpec(**BASE, runs=[{"name": "a", "overrides": {"learning_rate": 1e-4}}])
    assert swept.spec_hash() != before and JobSpec(**BASE, stages=["sft", "rl"]).spec_hash() != before


def test_a_sweep_may_vary_only_training_settings():
    with pytest.raises(ValidationError, match="cannot sweep model; sweepable: learning_rate"):
        JobSpec(**BASE, runs=[{"name": "a", "overrides": {"model": 1}}])
    with pytest.raises(ValidationError, match="name"):
        JobSpec(**BASE, runs=[{"name": "../escape", "overrides": {}}])
    with pytest.raises(ValidationError, match="stages"):
        JobSpec(**BASE, stages=[])


def test_unit_prefixes_and_which_checkpoints_exist(tmp_path):
    assert unit_prefix("jobs/j") == "jobs/j"
    assert unit_prefix("jobs/j", "lr-1e-4") == "jobs/j/runs/lr-1e-4"
    assert unit_prefix("jobs/j", "a", "rl") == "jobs/j/runs/a/stages/rl"
    assert unit_prefix("jobs/j", stage="sft") == "jobs/j/stages/sft"
    store = open_store(f"file://{tmp_path}")
    assert any_manifested(store, "jobs/j") is None
    store.write_bytes("jobs/j/runs/a/checkpoints/step-7/MANIFEST.json", b"{}")
    store.write_bytes("jobs/j/runs/b/checkpoints/step-9/weights.safetensors", b"")  # no manifest: none
    assert manifested_steps(store, "jobs/j") == [] and any_manifested(store, "jobs/j") == 7
    assert manifested_steps(store, "jobs/j/runs/a") == [7]


def test_the_strategy_follows_the_method_and_the_world():
    from training.recipes.dist import strategy

    lora, full = JobSpec(**BASE), JobSpec(**BASE, method="full")
    assert (strategy(lora, 1), strategy(full, 1)) == ("single", "single")
    assert (strategy(lora, 2), strategy(full, 8)) == ("ddp", "fsdp")
    assert strategy(JobSpec(**BASE, strategy="fsdp"), 4) == "fsdp"  # LoRA on a base too big for one GPU
    with pytest.raises(UserError, match="strategy=single runs one process"):
        strategy(JobSpec(**BASE, strategy="single"), 2)
    with pytest.raises(UserError, match="use strategy=ddp"):
        strategy(JobSpec(**BASE, method="qlora", strategy="fsdp"), 2)


def test_the_relay_writes_every_reason_and_request_to_every_child(tmp_path):
    from training.agent.launch import Relay
    from training.agent.runtime import Signals

    signals = Signals()
    relay = Relay(signals)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    relay.add(a)
    relay.add(b)
    assert json.loads(a.read_text()) == {"reason": None, "checkpoint": 0}
    signals.checkpoint_requested = True
    assert relay.sync() is None and json.loads(b.read_text()) == {"reason": None, "checkpoint": 1}
    signals.raise_reason("interrupted", "test")
    assert relay.sync() == "interrupted"
    assert json.loads(a.read_text()) == json.loads(b.read_text()) == {"reason": "interrupted", "checkpoint": 1}


def test_ranks_agree_on_the_gravest_reason():
    from training.recipes.runner import CODE, REASONS

    # all_reduce(MAX) picks the later one: an orphan never saves, a notice beats a stop.
    assert REASONS[max(CODE["stopped"], CODE["interrupted"]) - 1] == "interrupted"
    assert REASONS[max(CODE["deadline"], CODE["orphaned"]) - 1] == "orphaned"


def test_a_standalone_spec_needs_only_the_model(tmp_path):
    from training.recipes.runner import load_spec

    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"max_steps": 3}))
    spec = load_spec(path, tmp_path)
    assert (spec.model, spec.job_id, spec.max_steps) == ("tiny", "local", 3)


@pytest.mark.parametrize("nproc, runs, per_run, slots", [(2, 3, 1, 2), (8, 4, 2, 4), (8, 3, 2, 4), (1, 0, 1, 1)])
def test_gpus_per_run_and_slots(tmp_path, nproc, runs, per_run, slots):
    from training.agent.main import Attempt
    from training.agent.plan import Plan

    sweep = [{"name": f"r{i}", "overrides": {"seed": i}} for i in range(runs)]
    spec = JobSpec(**{**BASE, "store_uri": f"file://{tmp_path}/jobs/j"}, nproc_per_node=nproc, runs=sweep)
    attempt = Attempt(spec, open_store(f"file://{tmp_path}"), "jobs/j", tmp_path, tmp_path / "log")
    try:
        plan = Plan(attempt)
        assert (plan.per_run, plan.slots) == (per_run, slots)
        assert [r.seed for r in (plan.specs[s.name] for s in spec.runs)] == list(range(runs))
    finally:
        attempt.uploader.close()
