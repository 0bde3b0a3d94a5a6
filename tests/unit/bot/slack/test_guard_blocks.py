"""The spend guard's Block Kit builders as pure functions: cards in, payloads out, Slack's limits
held for any input (table-driven, no Slack, no mocks)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bot.slack.blocks import guard as G
from bot.slack.blocks import quote as B
from tests.support.slack_values import NOW, assert_within_limits, job_view, progress, warning

D = Decimal


def texts(blocks) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def actions_of(blocks) -> list[tuple[str, str, str]]:
    return [(e["action_id"], e["text"]["text"], e["value"]) for b in blocks
            if b["type"] == "actions" for e in b["elements"]]


@pytest.mark.parametrize(("card", "shown", "absent"), [
    (progress(), ["step 120/1,000 (12%)", "loss 1.2346", "2,346 tokens/s", "ETA 42m 00s",
                  "$12.34 of $50.00 cap (25%)", "`▓▓▓▓▓░░░░░░░░░░░░░░░`", "warning at $40.00",
                  "Projected final cost *$41.10*", "attempt 1 on g5.xlarge spot"],
     ["over the cap", ":warning:"]),
    (progress(projected_final_usd=D("61"), spent_usd=D("45")),
     [":warning: Projected final cost *$61.00* — over the cap", "(90%)"], []),
    (progress(loss=None, eta_s=None, projected_final_usd=None, step=0, phase="setup",
              instance_type=None, market=None),
     ["loss —", "ETA n/a", "setup", "attempt 1 on machine"], ["Projected"]),
    (progress(cap_usd=D("0"), spent_usd=D("0")), ["$0.00 of $0.00 cap (—)"], []),
    (progress(spent_usd=D("80"), cap_usd=D("50")), ["`▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓`", "(160%)"], []),
])
def test_progress_message(card, shown, absent):
    blocks = G.progress_blocks(card)
    assert_within_limits(blocks)
    text = texts(blocks)
    for piece in shown:
        assert piece in text, piece
    for piece in absent:
        assert piece not in text, piece
    assert not actions_of(blocks), "progress has no buttons"
    assert G.progress_text(card).startswith(f"{card.job_id}: step {card.step:,}/")


@pytest.mark.parametrize(("card", "label"), [
    (warning(), "Extend cap by $13"),  # 25% of $50 = $12.50, rounded up to whole dollars
    (warning(cap_usd=D("100")), "Extend cap by $25"),
    (warning(cap_usd=D("2")), "Extend cap by $1"),
    (warning(extend_by_usd=D("12.50")), "Extend cap by $12.50"),
])
def test_warning_mentions_the_requester_and_offers_three_buttons(card, label):
    blocks = G.warning_blocks(card)
    assert_within_limits(blocks, card.job_id)
    assert actions_of(blocks) == [("extend_cap", label, card.job_id),
                                  ("stop_now", "Stop now", card.job_id),
                                  ("let_run", "Let it run to the cap", card.job_id)]
    text = texts(blocks)
    assert "<@UREQ>" in text and "80% of the cap reached" in text
    assert "needs an approver" in text
    assert f"to {G.usd(card.cap_usd + card.extend_by_usd)}" in text
    assert card.job_id in G.warning_text(card)


def test_warning_reason_cannot_ping_the_channel():
    blocks = G.warning_blocks(warning(reason="<!channel> projected over"))
    assert "<!channel>" not in texts(blocks) and "&lt;!channel&gt;" in texts(blocks)


def test_recovery_question_has_continue_and_stop():
    blocks = G.recovery_blocks("j-1", "the next option needs $12, $8 remain", "UREQ")
    assert_within_limits(blocks, "j-1")
    assert "<@UREQ> *j-1* — the next option needs $12" in texts(blocks)
    assert actions_of(blocks) == [("continue_recovery", "Continue on the next option", "j-1"),
                                  ("stop_now", "Stop", "j-1")]


@pytest.mark.parametrize(("text", "hint"), [
    ("stopped at its cap: spent $50.02; last checkpoint at step 400", True),
    ("stopped at its cap; go on with `/train resume j-1 budget=+50`", False),
])
def test_cap_reached_says_how_to_go_on(text, hint):
    blocks = G.cap_reached_blocks("j-1", text)
    assert_within_limits(blocks)
    assert texts(blocks).count("/train resume j-1 budget=+50") == 1
    assert (len(blocks) == 2) is hint


def test_report_carries_the_text_and_who_asked():
    job = job_view()
    text = "*Job j-4f2a9c succeeded*\nCost $12.00 against a quote of $11.00 (+9%)"
    blocks = G.report_blocks(job, text, chart=True)
    assert_within_limits(blocks)
    assert "Cost $12.00" in texts(blocks) and "<@U1>" in texts(blocks)
    assert "chart in the thread" in texts(blocks)
    assert "chart" not in texts(G.report_blocks(job, text, chart=False))
    assert G.report_text(job.job_id, text) == "Job j-4f2a9c succeeded"


def test_huge_inputs_stay_within_limits():
    long = "x" * 20000
    assert_within_limits(G.warning_blocks(warning(reason=long, job_id="j-" + "a" * 60)),
                         "j-" + "a" * 60)
    assert_within_limits(G.recovery_blocks("j-1", long), "j-1")
    assert_within_limits(G.cap_reached_blocks("j-1", long))
    assert_within_limits(G.report_blocks(job_view(text=long), long, chart=True))
    assert_within_limits(G.progress_blocks(progress(phase=long, instance_type=long)))
    assert len(G.warning_text(warning(reason=long))) <= B.FALLBACK_TEXT_MAX
    assert len(G.report_text("j-1", long)) <= B.FALLBACK_TEXT_MAX


@pytest.mark.parametrize("action", ["extend_cap", "stop_now", "let_run", "continue_recovery"])
def test_resolved_message_drops_the_buttons_and_says_who_chose(action):
    shown = G.warning_blocks(warning())
    line = G.chosen_line(action, "UAPP", NOW, "cap now $63.00")
    blocks = G.resolved_blocks(shown, line)
    assert not actions_of(blocks)
    assert blocks[:-1] == [b for b in shown if b["type"] != "actions"]
    assert f"<@UAPP> <!date^{int(NOW.timestamp())}" in texts(blocks[-1])
    assert "cap now $63.00" in texts(blocks[-1])


def test_resolved_message_is_bounded_even_for_a_long_original():
    shown = [B.section(str(i)) for i in range(80)]
    blocks = G.resolved_blocks(shown, "chosen")
    assert len(blocks) == B.MAX_BLOCKS and blocks[-1] == B.section("chosen")


def test_only_guard_actions_become_buttons():
    with pytest.raises(ValueError):
        G.guard_button("approve", "Approve", "j-1")
    with pytest.raises(ValueError):
        G.guard_button("stop_now", "Stop", "j" * (B.BUTTON_VALUE_MAX + 1))


def test_warning_block_id_names_the_cap_it_was_raised_for():
    (actions,) = [b for b in G.warning_blocks(warning(cap_usd=D("62.50"))) if b["type"] == "actions"]
    assert actions["block_id"] == "warning:j-4f2a9c:62.50"
