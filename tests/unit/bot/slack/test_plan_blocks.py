"""The Slack quote of a sweep, a pipeline and a job with a reward file (issues #11, #12): the
layout, the runs, the stage table, and the user code shown verbatim with the approver rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.cli.quote import render_quote
from bot.grammar.commands import parse_request
from bot.slack.blocks.quote import quote_blocks
from workers.quoting.calibration import Calibration
from workers.quoting.catalog import catalog_prices
from workers.quoting.estimator import estimate

PRICES = catalog_prices(datetime(2025, 12, 1, tzinfo=UTC))


def quote(text, config):
    return estimate(parse_request(text, config), config, PRICES, Calibration())


def test_a_pipeline_quote_shows_every_stage_with_time_and_cost(config):
    q = quote("pipeline reduced budget=100", config)
    text = json.dumps(quote_blocks("j-1", q, "U1"))
    for word in ("stage", "prep", "sft", "rl", "eval", "buffer", "total", "GPUs: "):
        assert word in text
    cli = render_quote(q)
    assert "grpo: 150 completions sampled" in cli and "30 prompts × 2" in cli


def test_a_sweep_quote_lists_its_runs(config):
    q = quote("sft reduced sweep=seed:1,2,3 instance=g5.12xlarge spot=no", config)
    text = json.dumps(quote_blocks("j-1", q, "U1"))
    for run in ("seed=1", "seed=2", "seed=3"):
        assert run in text
    assert "GPU-hours" in text and "3 runs on" in text


def test_a_reward_file_is_shown_verbatim_and_needs_an_approver(config, tmp_path, monkeypatch):
    q = quote("rl reduced reward=rewards/score.py:score spot=no", config)
    text = json.dumps(quote_blocks("j-1", q, "U1"))
    assert "reward=rewards/score.py:score" in text
    assert "an approver must approve it, even within budget" in text
    assert "an approver must approve" in render_quote(q)
    plain = json.dumps(quote_blocks("j-2", quote("rl reduced reward=exact", config), "U1"))
    assert "approver must approve" not in plain
