"""The RL demo tasks, the held-out split every stage shares, and the RL fields of a JobSpec."""

from __future__ import annotations

import pytest

from schemas.job import JobSpec
from training.recipes.builtin.rl_data import RL_DEMO_PATH, render, rl_rows
from training.recipes.data import DataError, load_rows
from training.recipes.tasks import heldout_tasks, load_split, split, training_tasks, write_split


def spec(**fields) -> JobSpec:
    return JobSpec(job_id="j", store_uri="file:///tmp/s", model="tiny", data="demo-rl", **fields)


def test_bundled_rl_demo_is_what_the_generator_makes():
    assert RL_DEMO_PATH.read_text() == render(rl_rows())
    rows, _ = load_rows("demo-rl")
    assert len(rows) == 256 and {r["kind"] for r in rows} == {"sum", "reverse"}
    assert all(r["answer"] == r["completion"] for r in rows)
    assert rows[0]["answer"] == str(eval(rows[0]["prompt"][8:-1]))  # "What is a + b?"


def test_held_out_split_is_disjoint_deterministic_and_shared(tmp_path):
    rows, data_hash = load_rows("demo-rl")
    one, two = split(rows, data_hash, spec(eval_samples=20)), split(rows, data_hash, spec(eval_samples=20))
    assert one.heldout == two.heldout and len(one.heldout) == 20 and len(one.train) == 236
    # A partition of the rows: every row lands on exactly one side.
    assert sorted(map(str, one.heldout + one.train)) == sorted(map(str, rows))
    assert split(rows, data_hash, spec(eval_samples=20, seed=5)).heldout != one.heldout
    folder = write_split(one, tmp_path)
    assert (folder / "heldout.jsonl").read_text().count("\n") == 20
    assert load_split(spec(eval_samples=20), tmp_path).heldout == one.heldout


def test_tasks_cap_and_held_out_needs_eval_samples(tmp_path):
    tasks = training_tasks(spec(num_tasks=10, eval_samples=8), tmp_path)
    assert len(tasks) == 10 and all(t["reference"] == t["answer"] for t in tasks)
    assert len(heldout_tasks(spec(eval_samples=8), tmp_path)) == 8
    with pytest.raises(DataError, match="set eval_samples"):
        heldout_tasks(spec(), tmp_path)
    with pytest.raises(DataError, match="would hold out all 256 rows"):
        training_tasks(spec(eval_samples=256), tmp_path)


def test_rl_fields_change_what_a_checkpoint_means():
    base = spec()
    assert base.rl_method == "grpo" and base.n_samples == 4 and base.reward == "exact"
    for field, value in [("reward", "numeric"), ("n_samples", 8), ("rl_method", "best_of_n"),
                         ("init_from", "/x"), ("eval_samples", 4), ("top_k", 2), ("rounds", 3)]:
        assert spec(**{field: value}).spec_hash() != base.spec_hash(), field
