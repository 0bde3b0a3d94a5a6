"""`trainops quote` through the real command line: the table, the JSON contract, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from bot.cli.quote import render_quote
from schemas.spec import Quote
from workers.quoting import make_quote

TRAINOPS = shutil.which("trainops")


def trainops(*args: str, tmp_path) -> subprocess.CompletedProcess:
    # No AWS credentials and a fresh folder: catalog prices, embedded defaults, every time.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRAINOPS_"))}
    env.update(HOME=str(tmp_path), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_CONFIG_FILE=str(tmp_path / "none"), TRAINOPS_PROVIDER="aws")  # AWS's quote
    # The installed console script, as a person runs it (the module where it is not installed).
    command = [TRAINOPS] if TRAINOPS else [sys.executable, "-m", "bot.cli.main"]
    return subprocess.run([*command, *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)


OPTION_KEYS = {"instance_type", "gpu", "gpu_count", "market", "hourly_usd", "price_source",
               "price_age_s", "hours", "cost_usd", "cost_p90_usd", "feasible", "fits_budget",
               "reason"}


def test_json_contract(tmp_path):
    done = trainops("quote", "sft reduced budget=100 gpu=a10g", "--json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {"request", "workload", "options", "recommended", "over_budget_usd"} <= set(data)
    assert data["request"]["stage"] == "sft" and data["request"]["preset"] == "reduced"
    assert data["request"]["budget_usd"] == 100 and data["request"]["cap_usd"] == 100
    assert {"params", "tokens", "method", "flops"} <= set(data["workload"])
    assert data["options"]
    for o in data["options"]:
        assert OPTION_KEYS <= set(o)
        assert o["market"] in ("spot", "on-demand") and o["price_source"] == "catalog"
        assert o["reason"] is None if o["feasible"] else o["reason"]
    feasible = [o["cost_usd"] for o in data["options"] if o["feasible"]]
    assert feasible == sorted(feasible)
    assert data["recommended"] in data["options"]
    assert data["over_budget_usd"] == 0
    Quote.model_validate(data)  # what the bot and the runner read back


def test_table_for_people(tmp_path):
    done = trainops("quote", "sft reduced budget=100", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for header in ("instance", "GPUs", "market", "$/h", "hours", "cost", "P90", "fits",
                   "why not"):
        assert header in out.splitlines()[3]
    assert "Recommended:" in out and "Phases: setup" in out
    assert "T4 has no bf16" in out
    assert "catalog snapshot" in out  # where the prices came from, and how old they are


@pytest.mark.parametrize(("text", "words"), [
    ("sft budjet=100", "did you mean budget"),
    ("rl reward=score.py", "name the function after the file"),
    ("sft budget=1e999", "finite"),
    ('sft command="unclosed', "unbalanced quotes"),
    ("sft gpu=tpu", "known families"),
])
def test_bad_input_exits_2_with_one_line(text, words, tmp_path):
    done = trainops("quote", text, tmp_path=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("trainops: ")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("toml", "words"), [
    ("[limits]\nmax_budget_usd = -1\n", "max_budget_usd"),
    ('[calibration]\n"a10g/lora" = 3\n', "calibration.a10g/lora"),
    ("[limits\n", "not valid TOML"),
])
def test_bad_team_config_is_one_line_too(toml, words, tmp_path):
    (tmp_path / "trainops.toml").write_text(toml)
    done = trainops("quote", "sft", tmp_path=tmp_path)
    assert done.returncode == 2 and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_team_config_changes_the_quote(tmp_path):
    (tmp_path / "trainops.toml").write_text(
        '[presets.tiny]\nsamples = 4\nmax_steps = 1\n[calibration]\n"a10g/lora" = 0.5\n')
    done = trainops("quote", "sft tiny instance=g5.xlarge", "--json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["request"]["preset"] == "tiny" and data["request"]["samples"] == 4
    assert data["options"][0]["calibration"] == "team config (trainops.toml)"


def test_over_budget_says_by_how_much_and_what_reduced_costs(config):
    from bot.grammar.commands import parse_request

    q = make_quote(parse_request("sft samples=100000 data=acme/tickets budget=1", config), config, live=False)
    text = render_quote(q)
    assert q.recommended is None and q.over_budget_usd > 0
    assert "Nothing fits the budget" in text and f"${q.over_budget_usd:,.2f} over" in text
    assert f"reduced preset would cost about ${q.reduced_cost_usd:,.2f}" in text


def test_render_without_any_option(config):
    from bot.grammar.commands import parse_request

    q = make_quote(parse_request("sft instance=p5.4xlarge spot=yes", config), config, live=False)
    text = render_quote(q)
    assert "(no options)" in text and "No option can run this request." in text
