"""Reading a metrics log into seconds per step, setup and finish (the local option's figures)."""

from __future__ import annotations

import pytest

from workers.providers.local_calibration import gpu_family, measure, steady


def _log(fixed_s: float, step_s: float, steps: int, warmup: list[float], first: int = 1):
    """Rows as the agent writes them: step i done at fixed + warm-up + i x step."""
    rows, t = [], fixed_s
    for i in range(steps):
        t += step_s + (warmup[i] if i < len(warmup) else 0.0)
        rows.append({"step": first + i, "loss": 1.0, "tokens": 2048, "t": round(t, 3)})
    return rows


def test_the_rate_is_read_past_the_warm_up_and_the_warm_up_is_setup():
    rows = _log(fixed_s=20.0, step_s=0.5, steps=24, warmup=[3.0, 2.0, 1.0])
    step_s, fixed, steps = steady(rows)
    assert step_s == pytest.approx(0.5, abs=1e-3)
    assert fixed == pytest.approx(26.0, abs=0.05)  # 20 s before, 6 s of warm-up
    assert steps == 24
    # setup + steps x step_s is exactly when the last step ended: the quote's time model
    assert fixed + steps * step_s == pytest.approx(rows[-1]["t"], abs=1e-6)


def test_the_rate_carries_the_saves_of_whole_checkpoint_periods():
    """300 steps saving every 50 (a pause before the next step, none after the last): the
    second half's rate is a step plus a fiftieth of a save, as a job's steps run."""
    rows, t = [], 5.0
    for step in range(1, 301):
        t += 0.04 + (0.5 if step > 1 and (step - 1) % 50 == 0 else 0.0)
        rows.append({"step": step, "loss": 1.0, "tokens": 2048, "t": round(t, 3)})
    step_s, _fixed, steps = steady(rows)
    assert step_s == pytest.approx(0.04 + 0.5 / 50, abs=1e-6)
    assert steps == 300


def test_finish_is_what_was_billed_after_the_last_step():
    rows = _log(fixed_s=10.0, step_s=1.0, steps=10, warmup=[])
    step_s, setup_s, finish_s = measure(rows, billed_s=rows[-1]["t"] + 4.0)
    assert (step_s, setup_s, finish_s) == pytest.approx((1.0, 10.0, 4.0), abs=1e-6)


def test_a_resumed_attempt_takes_its_setup_from_the_first():
    first = _log(fixed_s=10.0, step_s=1.0, steps=10, warmup=[])
    resumed = _log(fixed_s=30.0, step_s=1.0, steps=10, warmup=[], first=11)
    _, setup_s, _ = measure(resumed, billed_s=45.0, first_rows=first)
    assert setup_s == pytest.approx(10.0, abs=1e-6)


def test_too_short_a_log_measures_nothing():
    assert measure([{"step": 1, "t": 3.0}], billed_s=10.0) is None


@pytest.mark.parametrize(("name", "family"), [
    ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA L40S", "l40s"), ("NVIDIA L4", "l4"),
    ("NVIDIA A10G", "a10g"), ("Some Future GPU", "Some Future GPU")])
def test_gpu_names_map_to_the_catalog_families(name, family):
    assert gpu_family(name) == family
