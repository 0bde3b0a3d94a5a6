"""The `/train` words for sweeps, stages and RL (issues #11, #12). Pure.

    /train sft reduced sweep=learning_rate:1e-4,2e-4,5e-4
    /train rl from=j-4f2a9c reward=exact num_tasks=30 n_samples=5 method=grpo
    /train pipeline reduced budget=100            (prep, sft, rl, eval)

Each parser takes the user's word and returns the TrainRequest fields it sets, or raises
ParseError naming what is valid.
"""

from __future__ import annotations

import math
import re

from bot.grammar.values import ParseError, closest, show
from workers.quoting.rewards import BUILTIN_REWARDS, reward_syntax_error

# The stage word -> the stages the agent runs, in order.
STAGE_PLANS: dict[str, list[str]] = {
    "sft": ["sft"],
    "rl": ["rl"],
    "eval": ["eval"],
    "pipeline": ["prep", "sft", "rl", "eval"],
}
STAGE_NAMES = ("prep", "sft", "rl", "eval")

# What a sweep may vary, and each value's check: (parse, lowest, highest, example).
SWEEP_KEYS: dict[str, tuple[type, float, float, str]] = {
    "learning_rate": (float, 1e-8, 1.0, "learning_rate:1e-4,2e-4,5e-4"),
    "lora_r": (int, 1, 1024, "lora_r:8,16,32"),
    "seed": (int, 0, 2**31 - 1, "seed:1,2,3"),
    "epochs": (int, 1, 1000, "epochs:1,2,3"),
}
MAX_SWEEP_RUNS = 32
RL_METHODS = {"grpo": "grpo", "best_of_n": "best_of_n", "best-of-n": "best_of_n",
              "bestofn": "best_of_n"}
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def sweep(raw: str) -> dict:
    """`learning_rate:1e-4,2e-4`: one key and at least two distinct values."""
    key_text, sep, values_text = raw.strip().partition(":")
    key = key_text.strip().lower().replace("-", "_")
    valid = ", ".join(SWEEP_KEYS)
    if not sep or not values_text.strip():
        raise ParseError(f"sweep={show(raw)} needs a key and its values, e.g. "
                         f"sweep=learning_rate:1e-4,2e-4,5e-4 (keys: {valid})")
    if key not in SWEEP_KEYS:
        raise ParseError(f"sweep key {show(key_text)}{closest(key, list(SWEEP_KEYS))} cannot be "
                         f"swept: use one of {valid}")
    kind, low, high, example = SWEEP_KEYS[key]
    values: list[float] = []
    for word in values_text.split(","):
        text = word.strip()
        try:
            value = float(text) if kind is float else int(text)
        except ValueError:
            what = "a number" if kind is float else "a whole number"
            raise ParseError(f"sweep {key}: {show(text or '(empty)')} is not {what}: e.g. "
                             f"sweep={example}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise ParseError(f"sweep {key}: {show(text)} is outside {low:g}..{high:g}")
        if value in values:
            raise ParseError(f"sweep {key}: {show(text)} is given twice: give each value once")
        values.append(value)
    if not 2 <= len(values) <= MAX_SWEEP_RUNS:
        raise ParseError(f"sweep {key} needs 2 to {MAX_SWEEP_RUNS} values, got {len(values)}: "
                         f"e.g. sweep={example}")
    return {"sweep_key": key, "sweep_values": values}


def stages(raw: str) -> dict:
    """`stages=prep,sft,rl,eval`: a subset of the stages, in their fixed order."""
    words = [w.strip().lower() for w in raw.split(",") if w.strip()]
    for w in words:
        if w not in STAGE_NAMES:
            raise ParseError(f"unknown stage {show(w)}{closest(w, STAGE_NAMES)} in stages=: use "
                             f"some of {','.join(STAGE_NAMES)}")
    if not words or len(set(words)) != len(words):
        raise ParseError(f"stages={show(raw)}: name each stage once, e.g. stages=prep,sft,rl,eval")
    if words != sorted(words, key=STAGE_NAMES.index):
        raise ParseError(f"stages={show(raw)} are out of order: they run as "
                         f"{','.join(STAGE_NAMES)}")
    return {"stages": words}


def init_from(raw: str) -> dict:
    """`from=j-4f2a9c` (a job's trained weights) or `from=s3://bucket/.../final/`."""
    text = raw.strip()
    if text.startswith(("s3://", "file://")) and len(text) > len("s3://") + 2:
        return {"init_from": text}
    if _JOB_ID.match(text):
        return {"init_from": text}
    raise ParseError(f"from={show(raw)} is not a job id or a store folder: use from=j-4f2a9c or "
                     "from=s3://bucket/jobs/j-4f2a9c/final/")


def reward(raw: str) -> dict:
    problem = reward_syntax_error(raw)
    if problem:
        raise ParseError(problem)
    return {"reward": raw.strip()}


def rl_method(key: str, raw: str) -> dict:
    method = RL_METHODS.get(raw.strip().lower())
    if method is None:
        raise ParseError(f"{key}={show(raw)} is not valid: use {key}=grpo|best_of_n")
    return {"rl_method": method}


def stage_value(key: str, raw: str) -> dict:
    """The TrainRequest fields one sweep/stage/RL `key=value` sets."""
    if key == "sweep":
        return sweep(raw)
    if key == "stages":
        return stages(raw)
    if key == "from":
        return init_from(raw)
    if key == "reward":
        return reward(raw)
    if key in ("method", "rl_method"):
        return rl_method(key, raw)
    from bot.grammar.values import _count  # the same counting words as samples=

    return {key: _count(key, raw)}


def check_plan(fields: dict, given: set[str]) -> None:
    """What the stage, its keys and the sweep say together: the mistakes one word can't show."""
    plan = fields["stages"]
    if not {"rl", "eval"} & set(plan) and {"method", "rl_method", "reward"} & given:
        raise ParseError("method= and reward= are for the rl and eval stages: use /train rl … "
                         "or /train pipeline …")
    if fields.get("sweep_key") and plan != ["sft"]:
        raise ParseError("a sweep runs SFT runs side by side: use it with /train sft, not with "
                         f"stages {','.join(plan)}")
    top_k, n = fields.get("top_k"), fields.get("n_samples")
    if fields.get("rl_method") == "best_of_n" and top_k and n and top_k > n:
        raise ParseError(f"top_k={top_k} is more than n_samples={n}: keep at most as many "
                         "completions as you sample")


__all__ = ["BUILTIN_REWARDS", "MAX_SWEEP_RUNS", "STAGE_NAMES", "STAGE_PLANS", "SWEEP_KEYS",
           "check_plan", "stage_value"]
