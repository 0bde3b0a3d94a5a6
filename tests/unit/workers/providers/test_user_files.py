"""A team's reward file is uploaded beside its job and the spec names the copy; the control
plane reads the bytes but never runs them."""

from __future__ import annotations

import pytest

from schemas.errors import UserError
from schemas.job import JobSpec
from schemas.store import open_store
from workers.providers.user_files import ship_reward


def job(store, reward: str) -> JobSpec:
    return JobSpec(job_id="j-rw", store_uri=f"{store.uri}/jobs/j-rw", model="tiny", stages=["rl"], reward=reward)


def test_the_reward_file_goes_to_the_store_and_the_spec_names_the_copy(tmp_path):
    store = open_store(f"file://{tmp_path / 'store'}")
    code = b"raise SystemExit('this file must never run in the control plane')\ndef score(p, c, **r):\n    return 1.0\n"
    (tmp_path / "mine.py").write_bytes(code)
    shipped = ship_reward(store, job(store, f"0.5*exact + {tmp_path}/mine.py:score"))
    head, _, fn = shipped.reward.split(" + ")[1].rpartition(":")
    assert fn == "score" and shipped.reward.startswith("0.5*exact + ")
    assert head.startswith(f"{store.uri}/jobs/j-rw/user/reward_") and head.endswith(".py")
    assert store.read_bytes(head[len(store.uri) + 1:]) == code
    assert ship_reward(store, shipped) == shipped  # a relaunch keeps the same copy


def test_an_unreadable_reward_file_is_one_line(tmp_path):
    store = open_store(f"file://{tmp_path / 'store'}")
    with pytest.raises(UserError, match="reward file .*gone.py cannot be read") as caught:
        ship_reward(store, job(store, f"{tmp_path}/gone.py:score"))
    assert "\n" not in str(caught.value)


def test_built_in_rewards_are_left_as_they_are(tmp_path):
    store = open_store(f"file://{tmp_path / 'store'}")
    spec = job(store, "numeric + length:20")
    assert ship_reward(store, spec) is spec
    assert store.list("jobs/") == []
