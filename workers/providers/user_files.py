"""A team's reward file travels with its job.

`reward=rewards/mine.py:score` names a file on the machine the request came from; the training
machine cannot see it. Before the spec is written, the file's bytes go to the store beside the
job (`jobs/<id>/user/reward_<sha256[:12]>.py`, named by content, so a relaunch writes the same
key) and the spec's reward names that copy. The control plane only reads and uploads the bytes:
it never imports or runs them (the agent fetches the copy and tries it on a data row first).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from schemas.errors import UserError
from schemas.job import JobSpec
from schemas.store import job_prefix
from training.recipes.rewards import RewardError, team_files


def ship_reward(store, spec: JobSpec) -> JobSpec:
    """The spec with every local team reward file replaced by its store copy (uploaded now).
    Raises UserError with one line when a file cannot be read."""
    text = spec.reward
    if not text or spec.command:
        return spec
    try:
        files = team_files(text)
    except RewardError as exc:
        raise UserError(str(exc)) from None
    if not files:
        return spec
    for path_text, name in files:
        if "://" in path_text:
            continue  # already in a store
        path = Path(path_text).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"reward file {path_text} cannot be read ({exc.strerror or exc}); "
                            "give a readable .py file as reward=path/file.py:function") from None
        key = f"{job_prefix(spec.job_id)}/user/reward_{hashlib.sha256(data).hexdigest()[:12]}.py"
        store.write_bytes(key, data)
        text = text.replace(f"{path_text}:{name}", f"{store.uri}/{key}:{name}")
    return spec.model_copy(update={"reward": text})
