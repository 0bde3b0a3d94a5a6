"""Rewards (pure, no torch): the built-ins score what they say, a team's function is called with
the row, and every bad reward text is refused with one line naming what is wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest

from training.recipes.rewards import RewardError, check_reward_spec, parse_reward

ROW = {"prompt": "What is 2 + 3?", "answer": "5"}


@pytest.mark.parametrize("text, completion, score", [
    ("exact", " 5. ", 1.0),
    ("exact", "6", 0.0),
    ("contains", "2 + 3 = 5", 1.0),
    ("contains", "six", 0.0),
    ("numeric", "42", 1.0),
    ("numeric", "a1b2", 0.5),
    ("numeric", "", 0.0),
    (r"regex:^\d+$", "123", 1.0),
    (r"regex:^\d+$", "12a", 0.0),
    ("json:name=str,age=int", '{"name": "Ada", "age": 36}', 1.0),
    ("json:name=str,age=int", '{"name": "Ada", "age": "36"}', 0.0),
    ("json:name=str,age=int", '{"name": "Ada"}', 0.0),
    ("json:name=str", "not json", 0.0),
    ("json:flag=int", '{"flag": true}', 0.0),
    ("json:x=number", '{"x": 1.5}', 1.0),
    ("length:4", "abcd", 1.0),
    ("length:4", "ab", 0.5),
    ("length:4", "abcdefghij", 0.0),
    ("exact + 0.5*length:1", "5", 1.5),
    ("exact + 0.5*length:2", "5", 1.25),
])
def test_builtins_score(text, completion, score):
    reward = parse_reward(text)
    assert reward(ROW["prompt"], completion, ROW) == pytest.approx(score)


def test_pass_means_every_term_at_its_best():
    reward = parse_reward("exact + 0.5*length:1")
    assert reward.pass_at == 1.5
    assert reward.passes(reward("", "5", ROW)) and not reward.passes(reward("", "55", ROW))


def test_reference_comes_from_answer_completion_or_the_last_assistant_message():
    reward = parse_reward("exact")
    assert reward("", "hi", {"prompt": "p", "completion": "hi"}) == 1.0
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "hi"}]}
    assert reward("", "hi", chat) == 1.0
    with pytest.raises(RewardError, match="reference answer"):
        check_reward_spec("exact", {"prompt": "no answer here"})


def test_a_teams_function_gets_prompt_completion_and_the_row(tmp_path):
    (tmp_path / "score.py").write_text(
        "def score(prompt, completion, reference=None, kind=None, **row):\n"
        "    return float(completion.strip() == reference) + (0.5 if kind == 'sum' else 0.0)\n")
    reward = check_reward_spec(f"{tmp_path}/score.py:score", {"prompt": "p", "completion": "7", "kind": "sum"})
    assert reward("p", "7", {"prompt": "p", "completion": "7", "kind": "sum"}) == 1.5
    assert reward("p", "8", {"prompt": "p", "completion": "7", "kind": "other"}) == 0.0


@pytest.mark.parametrize("body, text, expected", [
    (None, "{d}/missing.py:score", "file {d}/missing.py not found"),
    ("score = 3\n", "{d}/r.py:score", "score in {d}/r.py is a int, not a function"),
    ("def other(p, c, **k):\n    return 1.0\n", "{d}/r.py:score", "has no function 'score'"),
    ("def score(p, c:\n", "{d}/r.py:score", "line 1: syntax error"),
    ("def score(p, c, **k):\n    raise ValueError('boom')\n", "{d}/r.py:score", "raised on a sample row"),
    ("def score(p, c, **k):\n    return 'high'\n", "{d}/r.py:score", "must return a finite number"),
    ("import not_a_module_xyz\n", "{d}/r.py:score", "importing {d}/r.py failed: ModuleNotFoundError"),
    (None, "exactly", "unknown reward 'exactly'; valid: exact, contains"),
    (None, "regex:(", "not a valid regular expression"),
    (None, "length:zero", "N must be a whole number"),
    (None, "json:a=tuple", "type 'tuple' of key 'a'"),
    (None, "", "reward is empty"),
    (None, "{d}/r.py", "name the function after the file"),
])
def test_bad_reward_specs_are_one_clear_line(tmp_path, body, text, expected):
    if body is not None:
        (tmp_path / "r.py").write_text(body)
    with pytest.raises(RewardError) as caught:
        check_reward_spec(text.format(d=tmp_path))
    message = str(caught.value)
    assert "\n" not in message and expected.format(d=tmp_path) in message, message


def test_the_validator_and_the_stage_registry_import_no_torch():
    code = ("import sys; from training.recipes.rewards import check_reward_spec; "
            "from training.recipes import RECIPES, recipe_class; check_reward_spec('exact'); "
            "print('torch' in sys.modules, sorted(RECIPES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False ['eval', 'prep', 'rl', 'sft']"


def test_an_unknown_stage_is_one_line():
    from schemas.errors import UserError
    from training.recipes import recipe_class

    with pytest.raises(UserError, match=r"unknown stage 'dpo'; known stages: eval, prep, rl, sft"):
        recipe_class("dpo")
