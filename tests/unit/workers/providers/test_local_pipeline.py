"""Reading a pipeline's stage starts from its metrics log (issue 13): each stage's wall time less
its work at the measured rates, the very rule the quote adds them up by, so a quote of the run
that was measured gives back its time."""

from __future__ import annotations

import pytest

from bot.grammar.commands import parse_request
from schemas.config import load_config
from tests.unit.workers.quoting.test_local_stages import PIPELINE, PRICE, _profile
from workers.providers.local_pipeline import stage_measurements, stretches
from workers.quoting.local_option import local_option

CONFIG = load_config(None)


def _log(profile) -> tuple[list[dict], float]:
    """The metrics rows a run taking exactly the quoted time per stage would log."""
    request = parse_request(PIPELINE, CONFIG)
    o = local_option(request, CONFIG, profile, PRICE, monitor_s=0.0)
    starts = {"prep": 7.0, "sft": 6.0, "eval": 5.0, "rl": 4.0}
    # sft logged 3 steps (its rows packed into 3 sequences), rl 2, each eval 1.
    rows, t = [{"t": 7.0, "step": 1, "stage": "prep"}], 7.0
    sft_s = 3 * 0.5
    t += starts["sft"] + sft_s
    rows += [{"t": t, "step": s, "stage": "sft"} for s in (1, 2, 3)]  # relayed together
    eval_s = o.phases["eval"] * 3600 / 2
    # rl's two steps take twice what the model of a step says (TRL's own work): factor 2.
    rl_step = (o.phases["generation"] + o.phases["policy_update"]) * 3600 / 2 * 2
    t += starts["eval"] + eval_s
    rows.append({"t": t, "step": 1, "stage": "eval"})
    t += starts["rl"]
    rows += [{"t": t + rl_step * s, "step": s, "stage": "rl"} for s in (1, 2)]
    t += 2 * rl_step + starts["eval"] + eval_s
    rows.append({"t": t, "step": 1, "stage": "eval"})
    return rows, t


def test_each_stage_start_is_its_wall_time_less_its_work():
    profile = _profile()
    rows, _ = _log(profile)
    assert [s for s, *_ in stretches(rows)] == ["prep", "sft", "eval", "rl", "eval"]
    found = stage_measurements(rows, parse_request(PIPELINE, CONFIG), CONFIG, profile, "job j-1")
    assert [(m.stage, m.first) for m in found] == [
        ("prep", True), ("sft", False), ("eval", False), ("rl", False), ("eval", False)]
    assert [m.fixed_s for m in found] == pytest.approx([7.0, 6.0, 5.0, 4.0, 5.0])
    assert all(m.source == "job j-1" for m in found)
    # rl logged two steps: its step time is read, and how far it is from the model of a step.
    assert [m.factor for m in found] == [None, None, None, pytest.approx(2.0), None]


def test_the_measured_factor_scales_the_next_quote():
    profile = _profile()
    rows, _ = _log(profile)
    request = parse_request(PIPELINE, CONFIG)
    before = local_option(request, CONFIG, profile, PRICE, monitor_s=0.0)
    learnt = profile.add_stages(stage_measurements(rows, request, CONFIG, profile, "job j-1"))
    after = local_option(request, CONFIG, learnt, PRICE, monitor_s=0.0)
    assert after.phases["generation"] == pytest.approx(2 * before.phases["generation"])
    assert after.phases["eval"] == pytest.approx(before.phases["eval"])  # one step: no factor


def test_a_log_that_is_not_one_pass_of_the_stages_teaches_nothing():
    profile = _profile()
    rows, _ = _log(profile)
    resumed = [r for r in rows if r["stage"] in ("rl", "eval")][2:]  # an attempt from rl on
    request = parse_request(PIPELINE, CONFIG)
    assert stage_measurements(resumed, request, CONFIG, profile, "job j-2") == []
