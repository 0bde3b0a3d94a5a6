"""The /train grammar: valid texts give the request people meant, invalid ones one clear line."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.grammar.commands import (
    HELP_TEXT,
    KEYS,
    Cancel,
    Help,
    Jobs,
    ParseError,
    Resume,
    Status,
    Train,
    parse_command,
    parse_request,
)
from schemas.errors import UserError

VALID = [
    # text, expected fields (a subset of the TrainRequest)
    ("sft", dict(stage="sft", preset="full", budget_usd=100.0, cap_usd=100.0, warn=0.8,
                 model="Qwen/Qwen2.5-7B-Instruct", params_b=7.62, peft="lora", samples=None)),
    ("sft reduced budget=100", dict(preset="reduced", samples=200, epochs=1, max_steps=100,
                                    budget_usd=100.0, cap_usd=100.0)),
    ("SFT Smoke", dict(preset="smoke", samples=16, max_steps=5, seq_len=256)),
    ("sft budget=$250", dict(budget_usd=250.0, cap_usd=250.0)),
    ("sft budget=100usd cap=150", dict(budget_usd=100.0, cap_usd=150.0)),
    ("sft budget=100 cap=$80", dict(budget_usd=100.0, cap_usd=80.0)),  # a cap below is allowed
    ("sft budget=1,500.50", dict(budget_usd=1500.5)),
    ("sft warn=80%", dict(warn=0.8)),
    ("sft warn=0.5", dict(warn=0.5)),
    ("sft warn=1", dict(warn=1.0)),
    ("sft model=qwen/qwen2.5-0.5b-instruct", dict(model="Qwen/Qwen2.5-0.5B-Instruct",
                                                  params_b=0.494)),
    ("sft model=7b", dict(model="7B", params_b=7.0)),
    ("sft model=0.5B", dict(model="0.5B", params_b=0.5)),
    ("sft model=500M", dict(model="500M", params_b=0.5)),
    ("sft data=s3://my-bucket/train.jsonl", dict(data="s3://my-bucket/train.jsonl")),
    ("sft data=./data/train.jsonl", dict(data="./data/train.jsonl")),
    ("sft data=DEMO", dict(data="demo")),
    ("sft samples=5000 seq_len=1024 epochs=3 max_steps=700",
     dict(samples=5000, seq_len=1024, epochs=3, max_steps=700)),
    ("sft samples=5k", dict(samples=5000)),
    ("sft reduced samples=1000", dict(samples=1000, max_steps=100)),  # keys beat the preset
    ("sft peft=QLoRA precision=FP16", dict(peft="qlora", precision="fp16")),
    ("sft peft=none", dict(peft="none")),
    ("sft peft=full", dict(peft="none")),
    ("sft gpu=A10G", dict(gpu="a10g")),
    ("sft instance=G5.XLARGE gpu=a10g", dict(instance="g5.xlarge", gpu="a10g")),
    ("sft spot=no", dict(spot="no")),
    ("sft spot=YES", dict(spot="yes")),
    ("sft region=eu-west-1", dict(region="eu-west-1")),
    ("sft deadline=24h", dict(deadline_s=86400)),
    ("sft deadline=90m", dict(deadline_s=5400)),
    ("sft deadline=2d", dict(deadline_s=172800)),
    ("sft deadline=1h30m", dict(deadline_s=5400)),
    ('sft command="python train.py --x 1"', dict(command="python train.py --x 1")),
    ("sft command=\u201cpython train.py --lr 1e-4\u201d", dict(command="python train.py --lr 1e-4")),
    ("sft BUDGET=50 Seq-Len=512", dict(budget_usd=50.0, seq_len=512)),
    ("budget=10", dict(stage="sft", budget_usd=10.0)),  # the stage may be left out
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t for t, _ in VALID])
def test_valid_text_gives_the_request_meant(text, expected, config):
    request = parse_request(text, config)
    got = {k: getattr(request, k) for k in expected}
    assert got == expected
    assert request.text == text


def test_keys_in_any_order_give_the_same_request(config):
    a = parse_request("sft reduced budget=50 gpu=l4 spot=yes peft=qlora", config)
    b = parse_request("sft reduced peft=qlora spot=yes gpu=l4 budget=50", config)
    assert a.model_dump(exclude={"text"}) == b.model_dump(exclude={"text"})


INVALID = [
    # text, words the one-line message must contain
    ("", ["say what to train"]),
    ("rl reward=nope", ["unknown reward", "regex:PATTERN"]),
    ("ppo budget=1", ["unknown stage", "sft"]),
    ("sft fast", ["unknown preset", "full, reduced, smoke"]),
    ("sft reduce", ["did you mean reduced"]),
    ("sft reduced smoke", ["unexpected word", "key=value"]),
    ("sft budjet=100", ["unknown key", "did you mean budget", "valid keys"]),
    ("sft epoch=2", ["did you mean epochs"]),
    ("sft budget=abc", ["not an amount", "budget=100"]),
    ("sft budget=0", ["above $0"]),
    ("sft budget=-5", ["above $0"]),
    ("sft budget=inf", ["finite"]),
    ("sft budget=nan", ["finite"]),
    ("sft budget=1e400", ["finite"]),
    ("sft budget=5001", ["above the limit", "$5,000"]),
    ("sft cap=7501", ["above the limit", "$7,500"]),
    ("sft cap=0", ["above $0"]),
    ("sft budget=10 budget=20", ["given twice"]),
    ("sft Budget=10 BUDGET=20", ["given twice"]),
    ("sft warn=80", ["(0, 1]", "80%"]),
    ("sft warn=0", ["(0, 1]"]),
    ("sft warn=150%", ["(0, 1]"]),
    ("sft samples=0", ["between 1 and"]),
    ("sft samples=-3", ["positive whole number"]),
    ("sft samples=1.5", ["positive whole number"]),
    ("sft epochs=ten", ["positive whole number"]),
    ("sft epochs=5000", ["between 1 and 1,000"]),
    ("sft max_steps=99999999999999999999", ["positive whole number"]),
    ("sft model=gpt-4", ["unknown model", "a size like 7B"]),
    ("sft model=qwen/qwen2.5-7b", ["did you mean qwen/qwen2.5-7b-instruct"]),
    ("sft data=mydata", ["not a dataset", "s3://"]),
    ("sft peft=dora", ["peft=lora|qlora|none"]),
    ("sft precision=int8", ["precision=bf16|fp16|fp32"]),
    ("sft gpu=b200", ["unknown gpu", "a10g", "h100", "t4"]),
    ("sft gpu=a10", ["did you mean a10g"]),
    ("sft instance=g5.xlarg", ["did you mean g5.xlarge"]),
    ("sft instance=g5.xlarge gpu=h100", ["has a10g gpus", "not gpu=h100"]),
    ("sft spot=maybe", ["spot=yes|no|auto"]),
    ("sft region=mars", ["not an aws region"]),
    ("sft deadline=soon", ["duration like 24h"]),
    ("sft deadline=30s", ["between 1m"]),
    ("sft deadline=30d", ["336h"]),
    ('sft command="python train.py', ["unbalanced quotes"]),
    ("sft command=", ["command is empty"]),
    ("sft budget=100 \\", ["unbalanced quotes"]),
]


@pytest.mark.parametrize(("text", "words"), INVALID, ids=[t or "<empty>" for t, _ in INVALID])
def test_invalid_text_gives_one_clear_line(text, words, config):
    with pytest.raises(ParseError) as caught:
        parse_request(text, config)
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message
    for word in words:
        assert word.lower() in message.lower(), message
    assert isinstance(caught.value, UserError)  # the CLI turns it into exit 2


COMMANDS = [
    ("", Help()),
    ("help", Help()),
    ("jobs", Jobs()),
    ("status", Status(None)),
    ("status j-4f2a9c", Status("j-4f2a9c")),
    ("cancel j-4f2a9c", Cancel("j-4f2a9c")),
    ("resume j-4f2a9c", Resume("j-4f2a9c", None, None)),
    ("resume j-4f2a9c budget=+50", Resume("j-4f2a9c", 50.0, None)),
    ("resume j-4f2a9c budget=80", Resume("j-4f2a9c", None, 80.0)),
    ("resume j-4f2a9c budget=$80", Resume("j-4f2a9c", None, 80.0)),
]


@pytest.mark.parametrize(("text", "expected"), COMMANDS, ids=[t or "<empty>" for t, _ in COMMANDS])
def test_commands(text, expected, config):
    assert parse_command(text, config) == expected


def test_train_command_carries_the_request(config):
    command = parse_command("sft reduced budget=100", config)
    assert isinstance(command, Train)
    assert command.request == parse_request("sft reduced budget=100", config)


@pytest.mark.parametrize("text", ["cancel", "cancel a b", "status a b", "jobs all",
                                  "resume", "resume j-1 cap=5", "resume j-1 budget=+abc",
                                  "cancel $(rm)", "resume j-1 budget=+9999999"])
def test_bad_commands(text, config):
    with pytest.raises(ParseError) as caught:
        parse_command(text, config)
    assert str(caught.value) and "\n" not in str(caught.value)


def test_help_names_every_key_and_an_example():
    for key in KEYS:
        if key != "batch_size":
            assert key in HELP_TEXT
    assert "/train sft reduced budget=100" in HELP_TEXT
    assert not set("<>&") & set(HELP_TEXT)  # nothing Slack's mrkdwn would take for markup


def test_presets_come_from_the_team_config(config):
    team = config.model_copy(deep=True)
    team.presets["tiny"] = team.presets["smoke"].model_copy(update={"samples": 2})
    assert parse_request("sft tiny", team).samples == 2
    with pytest.raises(ParseError, match="full, reduced, smoke"):
        parse_request("sft tiny", config)


_WORDS = st.sampled_from(
    ["sft", "rl", "reduced", "smoke", "full", "=", "$", "usd", "%", '"', "'", "\\", " ", "e",
     "inf", "nan", "-", "+", "1e999", "0", "7B", "s3://", "help", "status", "resume", "cancel",
     ",", "\u201c", "\x00", "\n"] + [f"{k}=" for k in KEYS])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), st.lists(st.one_of(_WORDS, st.text(max_size=6)),
                                                max_size=12).map("".join)))
def test_no_text_makes_the_parser_raise_anything_but_its_own_error(text):
    from schemas.config import cached_config

    config = cached_config(None)
    for parse in (parse_request, parse_command):
        try:
            parse(text, config)
        except ParseError as exc:
            message = str(exc)
            assert message and len(message.splitlines()) == 1 and message == message.strip()
