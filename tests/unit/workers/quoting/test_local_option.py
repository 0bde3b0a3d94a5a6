"""The local provider's quote option (issue 13): its own rate, its own measured speed, setup and
finish, the 60 s minimum per start, and refusals with their reason."""

from __future__ import annotations

import pytest

from bot.grammar.commands import parse_request
from schemas.config import load_config
from schemas.spec import Quote
from workers.quoting import PriceBook, make_quote
from workers.quoting.local_option import (
    LocalProfile,
    Measurement,
    for_this_machine,
    local_option,
)
from workers.quoting.workload import work_of

CONFIG = load_config(None)
TEXT = "sft model=tiny data=demo max_steps=100 epochs=1000 seq_len=256 precision=fp32 budget=5"


def _measured(step_s=0.5, setup_s=12.0, finish_s=4.0, **shape) -> Measurement:
    request = parse_request(TEXT, CONFIG)
    fields = dict(model="tiny", method="lora", precision="fp32", seq_len=256, batch_size=8)
    fields.update(shape)
    fpt = work_of(request.model_copy(update=fields), CONFIG).flops_per_token(False)
    return Measurement(source="calibration", flops_per_token=fpt, step_s=step_s, setup_s=setup_s,
                       finish_s=finish_s, **fields)


def _profile(*ms: Measurement, gpus: int = 0, gpu: str = "cpu") -> LocalProfile:
    return LocalProfile(gpus=gpus, gpu=gpu, detected="test", measurements=list(ms))


def test_the_option_carries_its_own_rate_and_measured_speed():
    request = parse_request(TEXT, CONFIG)
    o = local_option(request, CONFIG, _profile(_measured()), 31.0, monitor_s=2.0)
    assert o.feasible and o.market == "local" and o.instance_type == "local"
    assert o.hourly_usd == 31.0 and o.price_source == "local"
    assert o.tokens_per_s == pytest.approx(8 * 256 / 0.5)
    # setup 12 s + 100 steps x 0.5 s + finish 4 s + half a monitor tick (1 s) = 67 s
    assert o.phases["setup"] * 3600 == pytest.approx(12.0)
    assert o.phases["train"] * 3600 == pytest.approx(50.0)
    assert o.phases["finish"] * 3600 == pytest.approx(5.0)
    assert o.cost_usd == pytest.approx(67 / 3600 * 31.0)
    assert "measured on this machine (1 run of this shape)" == o.calibration
    # One measurement: no spread to read a P90 from, so a 25% margin on every part.
    assert o.cost_p90_usd == pytest.approx((12 + 50 + 4 + 2) * 1.25 / 3600 * 31.0)


def test_a_short_run_is_billed_the_minute_a_start_costs():
    request = parse_request(TEXT.replace("max_steps=100", "max_steps=20"), CONFIG)
    o = local_option(request, CONFIG, _profile(_measured(step_s=0.1)), 36.0, monitor_s=2.0)
    assert o.hours * 3600 < 60
    assert o.cost_usd == pytest.approx(60 / 3600 * 36.0)


def test_another_shape_is_scaled_by_flops_per_step():
    request = parse_request(TEXT.replace("seq_len=256", "seq_len=128"), CONFIG)
    m = _measured(step_s=0.5)
    o = local_option(request, CONFIG, _profile(m), 10.0)
    flops_per_step = work_of(request, CONFIG).flops_per_token(False) * 8 * 128
    assert o.phases["train"] * 3600 == pytest.approx(100 * flops_per_step / m.flops_per_s)
    assert "other shapes, scaled by FLOPs per step" in o.calibration


def test_p90_reads_the_spread_of_several_measurements():
    request = parse_request(TEXT, CONFIG)
    profile = _profile(_measured(step_s=0.4), _measured(step_s=0.5), _measured(step_s=0.8))
    o = local_option(request, CONFIG, profile, 31.0, monitor_s=0.0)
    assert o.phases["train"] * 3600 == pytest.approx(50.0)  # the median
    assert o.cost_p90_usd == pytest.approx((12 + 80 + 4) / 3600 * 31.0)  # the slowest


@pytest.mark.parametrize(("text", "words"), [
    (TEXT.replace("precision=fp32", "peft=qlora"), "QLoRA needs a CUDA GPU"),
    (TEXT.replace("precision=fp32", "precision=fp16"), "fp16 training needs a GPU"),
    (TEXT + " gpu=a10g", "this machine has no GPU"),
])
def test_methods_that_cannot_run_here_are_refused_with_the_reason(text, words):
    o = local_option(parse_request(text, CONFIG), CONFIG, _profile(_measured()), 31.0)
    assert not o.feasible and words in o.reason


def test_qlora_is_fine_on_a_gpu_machine():
    text = TEXT.replace("precision=fp32", "peft=qlora precision=bf16")
    profile = _profile(_measured(), gpus=1, gpu="a10g")
    assert local_option(parse_request(text, CONFIG), CONFIG, profile, 1.0).feasible


def test_an_unmeasured_machine_says_how_to_measure_it():
    o = local_option(parse_request(TEXT, CONFIG), CONFIG, None, 31.0)
    assert not o.feasible and "trainops calibrate" in o.reason


def _aws_quote() -> Quote:
    return make_quote(parse_request(TEXT, CONFIG), CONFIG, price_book=PriceBook(live=False))


def test_the_quote_for_a_local_worker_is_this_machine_with_aws_named_to_compare():
    aws = _aws_quote()
    q = for_this_machine(aws, CONFIG, _profile(_measured()), 31.0, monitor_s=2.0)
    # The only option: approval rules, the launch and recovery read the options.
    assert [o.market for o in q.options] == ["local"] and q.recommended == q.options[0]
    assert any("for comparison, at catalog prices the cheapest AWS option is "
               f"{aws.recommended.instance_type}" in n for n in q.notes)


def test_over_budget_on_this_machine_says_by_how_much():
    q = for_this_machine(_aws_quote(), CONFIG, _profile(_measured(step_s=60.0)), 31.0)
    assert q.recommended is None
    assert q.over_budget_usd == pytest.approx(q.options[0].cost_usd - 5.0)


def test_make_quote_reads_the_profile_from_the_store(tmp_path):
    from schemas.settings import Settings
    from schemas.store import open_store
    from workers.quoting.local_option import write_profile

    settings = Settings(TRAINOPS_STORE=f"file://{tmp_path}", TRAINOPS_PROVIDER="local",
                        TRAINOPS_LOCAL_PRICE_PER_HOUR=7.2)
    write_profile(open_store(settings.store), _profile(_measured()))
    q = make_quote(parse_request(TEXT, CONFIG), CONFIG, settings=settings, live=False)
    assert q.recommended.market == "local" and q.recommended.hourly_usd == 7.2


def test_finished_jobs_setup_and_finish_win_over_the_calibration_run():
    request = parse_request(TEXT, CONFIG)
    job = _measured(step_s=0.5, setup_s=6.0, finish_s=2.0).model_copy(
        update={"source": "job j-1", "through_monitor": True})
    o = local_option(request, CONFIG, _profile(_measured(setup_s=30.0), job), 31.0, monitor_s=2.0)
    assert o.phases["setup"] * 3600 == pytest.approx(6.0)
    assert o.phases["finish"] * 3600 == pytest.approx(2.0)  # the monitor's lag is in it already
