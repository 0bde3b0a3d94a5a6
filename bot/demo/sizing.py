"""How big the demo's job is: measured from this machine first (its first use as a provider),
then sized so the quote has something to be right about."""

from __future__ import annotations

import math

from workers.rules.billing import MIN_BILLED_S

# The demo's job: the built-in tiny model on the bundled data, sized from this machine's own
# measured speed (workers/providers/local_calibration.py) to about TRAIN_S of training, so that
# each of its two attempts runs past the 60 s a start is billed at least (EC2's rule, which the
# meter applies to every provider); a shorter job would pay two minimums and miss its quote by
# the second one. `max_steps` bounds the run, a figure the quote knows exactly (`samples=400`
# would quote 400 full sequences for a dataset that packs into 46).
#
# The money: the budget is the quote's P90 plus two minutes at the local price, rounded up to
# $0.50: room for the agent's own deadline, which stops it when about 75 s of money is left
# under the cap (60 s of reserve, workers/rules/cap.py, and 15 s of margin,
# training/agent/runtime.py), and for the rehearsed interruption's second setup.
# warn: the warning at about half the quoted cost (demo_warn), so it comes mid-run. At the
# default 80% of a cap that holds the P90 and the deadline reserve, a run that goes as quoted
# never warns, which is the point of the default; the demo lowers it to show the card, and says
# so. At the warning the demo clicks "Extend cap" as an approver; the job would also finish
# without it.
TRAIN_S = 200.0


def demo_text(step_s: float, budget: float | None = None, warn: float = 0.5) -> str:
    steps = max(20, math.ceil(TRAIN_S / step_s))
    text = (f"sft model=tiny data=demo max_steps={steps} epochs=1000 seq_len=256 "
            "precision=fp32")
    return text + (f" budget={budget:g} warn={warn:g}" if budget else " budget=1000")


def demo_budget(expected_p90: float, hourly: float) -> float:
    return math.ceil((expected_p90 + hourly * 120 / 3600) * 2) / 2


def demo_warn(expected: float, cap: float, hourly: float) -> float:
    """The warning at about half the quoted cost (on the 0.05 grid `warn=` reads well on), so a
    run that goes as quoted crosses it mid-way; and above the first start's minimum charge (60 s
    at the price, billed from launch), else it fires on the first tick, during setup, before a
    step was taken. (At the default 80% of a cap that holds the P90 and the deadline reserve, a
    run that goes as quoted never warns, which is the point of the default.)"""
    minimum = hourly * MIN_BILLED_S / 3600
    above_minimum = (math.floor(minimum / cap * 20) + 1) / 20
    return max(0.05, round(expected / 2 / cap * 20) / 20, above_minimum)


def size_the_job(settings, config, narrate):
    """First use of the local provider: measure this machine, then size the job from it."""
    from bot.grammar.commands import parse_request
    from workers.providers.local_calibration import CalibrationError, ensure_profile
    from workers.quoting import make_quote

    narrate("first use of this machine as a provider: trainops measures it (the real agent, "
            "a few steps of the tiny model), so its quote is its own")
    try:
        profile = ensure_profile(settings, config, say=narrate)
    except CalibrationError as exc:
        narrate(str(exc))
        return None, 0.0
    step_s = min(m.step_s for m in profile.measurements if m.model == "tiny")
    sizing = make_quote(parse_request(demo_text(step_s), config), config,
                        settings=settings, live=False)
    mine = sizing.options[0]
    if not mine.feasible:
        narrate(f"this machine cannot take the demo's job: {mine.reason}")
        return None, 0.0
    budget = demo_budget(mine.cost_p90_usd, mine.hourly_usd)
    warn = demo_warn(mine.cost_usd, budget, mine.hourly_usd)
    narrate(
        f"the demo's job: about {TRAIN_S:.0f} s of training at the measured {step_s:.2f} s "
        f"a step. budget={budget:g}: the quote's P90 (${mine.cost_p90_usd:.2f}) plus 2 "
        "minutes at the local price, rounded up, because the agent stops itself when about "
        f"75 s of money is left under the cap. warn={warn:g}: the warning when "
        f"${budget * warn:.2f} is spent, past the first minute's minimum charge "
        f"(${mine.hourly_usd * MIN_BILLED_S / 3600:.2f}) and about half the ${mine.cost_usd:.2f} "
        "quoted, so you see it mid-run; at the default 80% a run that goes as quoted never warns")
    quote = make_quote(parse_request(demo_text(step_s, budget, warn), config), config,
                       settings=settings, live=False)
    # A step that has not come in three times the quoted time (a loaded machine) failed.
    return quote, 3 * quote.options[0].hours * 3600 + 120
