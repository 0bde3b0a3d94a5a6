"""The /train words for sweeps, stages and RL (issues #11, #12): valid texts give the request
meant, every mistake one clear line naming what is valid."""

from __future__ import annotations

import pytest

from bot.grammar.commands import HELP_TEXT, ParseError, parse_request

VALID = [
    ("sft sweep=learning_rate:1e-4,2e-4,5e-4",
     dict(stage="sft", stages=["sft"], sweep_key="learning_rate",
          sweep_values=[1e-4, 2e-4, 5e-4])),
    ("sft sweep=lora_r:8,16,32", dict(sweep_key="lora_r", sweep_values=[8, 16, 32])),
    ("sft sweep=seed:1,2", dict(sweep_key="seed", sweep_values=[1, 2])),
    ("sft sweep=Epochs:1,3", dict(sweep_key="epochs", sweep_values=[1, 3])),
    ("rl", dict(stage="rl", stages=["rl"], rl_method="grpo", reward=None)),
    ("rl reduced from=j-4f2a9c reward=exact method=best_of_n",
     dict(init_from="j-4f2a9c", reward="exact", rl_method="best_of_n", num_tasks=30,
          n_samples=5, top_k=2, rounds=1)),
    ("rl from=s3://bucket/jobs/j-1/final/ rl_method=grpo n_samples=16 num_tasks=1k rounds=3",
     dict(init_from="s3://bucket/jobs/j-1/final/", n_samples=16, num_tasks=1000, rounds=3)),
    ("rl reward='regex:^\\d+$'", dict(reward="regex:^\\d+$")),
    ("rl reward=json", dict(reward="json")),
    ("rl reward=rewards/score.py:score", dict(reward="rewards/score.py:score")),
    ("eval from=j-1 eval_samples=50", dict(stage="eval", stages=["eval"], eval_samples=50)),
    ("pipeline reduced budget=100",
     dict(stage="pipeline", stages=["prep", "sft", "rl", "eval"], samples=200, num_tasks=30,
          n_samples=5, top_k=2, budget_usd=100.0)),
    ("sft stages=prep,sft,rl,eval", dict(stage="pipeline", stages=["prep", "sft", "rl", "eval"])),
    ("sft stages=sft,eval", dict(stage="pipeline", stages=["sft", "eval"])),
    ("pipeline stages=rl", dict(stage="rl", stages=["rl"])),
]


@pytest.mark.parametrize(("text", "fields"), VALID, ids=[t for t, _ in VALID])
def test_valid_texts(text, fields, config):
    r = parse_request(text, config)
    for name, value in fields.items():
        assert getattr(r, name) == value, name


INVALID = [
    ("sft sweep=learning_rate", ["needs a key and its values", "learning_rate:1e-4"]),
    ("sft sweep=lr:1e-4,2e-4", ["cannot be swept", "learning_rate, lora_r, seed, epochs"]),
    ("sft sweep=learning_rate:1e-4,abc", ["'abc' is not a number"]),
    ("sft sweep=lora_r:8,8.5", ["'8.5' is not a whole number"]),
    ("sft sweep=learning_rate:1e-4", ["needs 2 to 32 values"]),
    ("sft sweep=learning_rate:1e-4,1e-4", ["given twice"]),
    ("sft sweep=learning_rate:5,1e-4", ["outside"]),
    ("sft sweep=seed:1,2 sweep=lora_r:8,16", ["sweep is given twice"]),
    ("rl sweep=seed:1,2", ["a sweep runs SFT runs", "not with"]),
    ("rl method=ppo", ["method='ppo' is not valid", "grpo|best_of_n"]),
    ("rl reward=bleu", ["unknown reward", "regex:PATTERN", "path/to/file.py:function"]),
    ("rl reward=score.py", ["name the function after the file"]),
    ("rl reward=regex:(", ["not a valid regular expression"]),
    ("rl from=not/a/job", ["not a job id or a store folder"]),
    ("rl n_samples=0", ["n_samples must be between 1 and"]),
    ("rl method=best_of_n n_samples=4 top_k=8", ["top_k=8 is more than n_samples=4"]),
    ("sft method=grpo", ["for the rl and eval stages"]),
    ("sft stages=sft,rlx", ["unknown stage 'rlx'", "(did you mean rl?)"]),
    ("sft stages=eval,sft", ["out of order"]),
    ("sft stages=prep", ["trains nothing"]),
    ("dpo", ["unknown stage", "sft, rl, eval, pipeline"]),
]


@pytest.mark.parametrize(("text", "words"), INVALID, ids=[t for t, _ in INVALID])
def test_invalid_texts_give_one_line(text, words, config):
    with pytest.raises(ParseError) as caught:
        parse_request(text, config)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_help_shows_the_new_stages_and_keys():
    for word in ("pipeline", "sweep=learning_rate:", "reward=", "from=", "stages=",
                 "best_of_n", "n_samples=", "top_k=", "num_tasks=", "rounds="):
        assert word in HELP_TEXT


def test_the_bundled_rl_tasks_are_a_dataset(config):
    """data=demo-rl: the RL tasks that ship with trainops (`trainops demo --pipeline` uses them)."""
    assert parse_request("pipeline model=tiny data=demo-rl reward=numeric eval_samples=8", config).data == "demo-rl"
    with pytest.raises(ParseError, match="use demo, demo-rl, s3://"):
        parse_request("sft data=demo_rl", config)
