"""The reward check the agent makes before any stage trains.

A team's reward file travels with the job (the control plane uploads it under
jobs/<id>/user/ and the spec names that copy; the control plane never runs it). Here, on the
training machine, the file is fetched and the whole reward is scored on the data's first row:
a function that is missing, raises or returns a non-number fails the job with one line before
hours of sft are spent (the rl and eval recipes check again on their own rows).
"""

from __future__ import annotations

import logging

from schemas.job import JobSpec

log = logging.getLogger("trainops.agent")
SCORING_STAGES = ("rl", "eval")


def check_team_reward(spec: JobSpec) -> None:
    """Raises RewardError (a UserError: one line) when the reward cannot score a sample row."""
    if spec.command or not spec.reward or not set(SCORING_STAGES) & set(spec.stages):
        return
    from training.recipes.data import load_rows
    from training.recipes.rewards import check_reward_spec, team_files
    from training.recipes.tasks import _task

    if not team_files(spec.reward):
        return  # built-ins are checked by the stages that use them, on their own rows
    rows, _ = load_rows(spec.data)
    check_reward_spec(spec.reward, _task(rows[0], 1) if rows else None)
    log.info("reward %s scores a sample row", spec.reward)
