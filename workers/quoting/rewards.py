"""Reward specs as the control plane sees them, checked before any machine launches.

The grammar of a reward is the agent's own (training/recipes/rewards.py): one parser for both
sides, so the quote accepts exactly what the rl recipe can score. This side never imports or runs
a team's file: it parses it (ast) to find the function. A reward file is user code that will run
on the GPU machine, like `command=`, so a request that names one needs an approver
(workers/rules/budget.py, needs_approver_for_code); the agent tries it on a sample row before training.
"""

from __future__ import annotations

import ast
from pathlib import Path

from training.recipes.rewards import VALID, RewardError, check_reward_syntax, team_files

BUILTIN_REWARDS = ("exact", "contains", "numeric", "regex:PATTERN", "json:KEY=TYPE,...",
                   "length:N")


def is_user_reward(text: str | None) -> bool:
    """A reward with a term that is the user's own code (a file), not only built-ins."""
    if not text:
        return False
    try:
        return bool(team_files(text))
    except RewardError:
        return ".py" in text


def reward_syntax_error(text: str) -> str | None:
    """None when `text` is a well-formed reward spec (files not opened); else one line. Pure."""
    try:
        check_reward_syntax(text)
    except RewardError as exc:
        return str(exc)
    return None


def check_reward_file(text: str | None, root: Path | None = None) -> str | None:
    """For rewards naming local files: None when each file exists and defines its function at top
    level; else one line. Store URIs (s3://) cannot be checked here and pass."""
    if not is_user_reward(text):
        return None
    try:
        check_reward_syntax(text)
        for path_text, name in team_files(text):
            if not path_text.startswith(("s3://", "file://")):
                _static_function_check(path_text, name, text, root)
    except RewardError as exc:
        return str(exc)
    return None


def _static_function_check(path_text: str, name: str, text: str, root: Path | None) -> None:
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = (root or Path.cwd()) / path
    if not path.is_file():
        raise RewardError(f"reward {text!r}: file {path_text} does not exist (looked in "
                          f"{path.parent}); give a path to a .py file next to where trainops runs")
    try:
        tree = ast.parse(path.read_text(errors="replace"), filename=str(path))
    except SyntaxError as exc:
        raise RewardError(f"reward {text!r}: {path_text} is not valid Python (line {exc.lineno}): "
                          f"{exc.msg}") from None
    defined = {node.name: node for node in tree.body
               if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            defined.update({tg.id: node for tg in node.targets if isinstance(tg, ast.Name)})
    if name not in defined:
        names = sorted(n.name for n in tree.body if isinstance(n, ast.FunctionDef))
        have = f"it defines {', '.join(names)}" if names else "it defines no function"
        raise RewardError(f"reward {text!r}: {path_text} has no function {name}: {have}")
    if not isinstance(defined[name], ast.FunctionDef):
        raise RewardError(f"reward {text!r}: {path_text}:{name} is not a function: the reward "
                          f"must be def {name}(...)")


__all__ = ["BUILTIN_REWARDS", "VALID", "check_reward_file", "is_user_reward",
           "reward_syntax_error"]
