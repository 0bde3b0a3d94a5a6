"""The Block Kit builders as pure functions: values in, payloads out, Slack's limits held for any
input (table-driven, no Slack, no mocks)."""

from __future__ import annotations

import json

import pytest

from bot.grammar.commands import HELP_TEXT
from bot.slack.blocks import jobs as BJ
from bot.slack.blocks import quote as B
from schemas.spec import Quote
from tests.support.slack_values import (
    BASE,
    NOW,
    assert_within_limits,
    job_view,
    option,
    quote_for,
    with_options,
)

SPOT, ON_DEMAND = option("spot", 5), option("on-demand", 9)


@pytest.mark.parametrize(("quote", "actions"), [
    (with_options(BASE, [SPOT, ON_DEMAND], SPOT), ["approve", "reject"]),
    (with_options(BASE, [ON_DEMAND], ON_DEMAND), ["approve_on_demand", "reject"]),
    (with_options(BASE, [option(fits=False), option("on-demand", fits=False)], None, 3.0),
     ["approve", "approve_on_demand", "reject"]),
    (with_options(BASE, [option(fits=False)], None, 3.0), ["approve", "reject"]),
    (with_options(BASE, [option(feasible=False, reason="needs 80 GB")], None), ["reject"]),
    (quote_for("sft full model=7B budget=1 spot=no"), ["approve_on_demand", "reject"]),
])
def test_buttons_follow_the_recommendation(quote, actions):
    assert B.approval_actions(quote) == actions
    got = [e["action_id"] for b in B.quote_blocks("j-1", quote, "U1") if b["type"] == "actions"
           for e in b["elements"]]
    assert got == actions


def test_over_budget_says_it_plainly():
    over = quote_for("sft full model=7B data=acme/tickets budget=1")
    assert over.over_budget_usd > 0
    text = json.dumps(B.quote_blocks("j-1", over, "U1"))
    assert f"over budget by {B.money(over.over_budget_usd)}, needs an approver" in text
    assert "over budget" not in json.dumps(B.quote_blocks("j-1", BASE, "U1"))


def test_quote_names_recommendation_phases_and_price_source():
    text = json.dumps(B.quote_blocks("j-1", with_options(BASE, [SPOT, ON_DEMAND], SPOT), "U1"))
    assert "Recommended: g5.xlarge spot" in text and "Phases: setup 6 min" in text
    assert "live spot/on-demand prices, 2 min old" in text


def huge_quote() -> Quote:
    options = [option(cost=i, instance_type=f"x{i}" * 20, fits=False) for i in range(400)]
    request = BASE.request.model_copy(update={"text": "sft " + "a" * 20000})
    return BASE.model_copy(update={"request": request, "options": options, "recommended": None,
                                   "over_budget_usd": 1e6, "notes": ["n" * 5000] * 50})


@pytest.mark.parametrize("quote", [BASE, quote_for("sft full model=7B budget=1"), huge_quote()])
def test_quote_blocks_respect_slack_limits(quote):
    blocks = B.quote_blocks("j-4f2a9c", quote, "U1", NOW)
    assert_within_limits(blocks, "j-4f2a9c")
    assert blocks[-1]["type"] == "actions", "the buttons survive any cut"
    assert len(B.quote_text("j-4f2a9c", quote)) <= B.FALLBACK_TEXT_MAX


def test_people_text_cannot_ping_or_link():
    request = BASE.request.model_copy(update={"text": "sft <!channel> <https://evil|click>"})
    text = json.dumps(B.quote_blocks("j-1", BASE.model_copy(update={"request": request}), "U1"))
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<!channel>" not in json.dumps(BJ.error_blocks("bad <!channel>", "abc"))


def test_fit_keeps_the_actions_block():
    many = [B.section(str(i)) for i in range(80)] + [{"type": "actions", "elements": []}]
    out = B.fit(many)
    assert len(out) == B.MAX_BLOCKS and out[-1]["type"] == "actions"
    assert "more not shown" in json.dumps(out[-2])


def test_decided_and_expired_messages_have_no_buttons():
    job = job_view()
    decided = B.decided_blocks(job, "approve", "U2", NOW)
    assert not [b for b in decided if b["type"] == "actions"]
    assert "*Approved* by <@U2> <!date^" in json.dumps(decided)
    expired = B.expired_blocks(job_view(status="expired"))
    assert not [b for b in expired if b["type"] == "actions"]
    assert "Quote expired" in json.dumps(expired)


def test_status_shows_spend_against_cap_and_stays_in_limits():
    attempts = [dict(attempt=i, provider="aws", instance_id=f"i-{i}", instance_type="g5.xlarge",
                     zone="us-east-1a", market="spot", hourly_usd=0.4, launched_at=NOW,
                     ended_at=None, end_reason="interrupted") for i in range(60)]
    events = [dict(kind="progress", actor="monitor", message="x" * 500, at=NOW)] * 300
    blocks = BJ.status_blocks(job_view(attempts=attempts, events=events))
    assert_within_limits(blocks)
    assert "$37.50 of cap $150.00 (25%)" in json.dumps(blocks)


def test_jobs_listing_is_bounded():
    jobs = [job_view(job_id=f"j-{i:06d}") for i in range(200)]
    blocks = BJ.jobs_blocks(jobs)
    assert_within_limits(blocks)
    assert "Live jobs (200)" in json.dumps(blocks) and "185 more" in json.dumps(blocks)
    assert "none" in json.dumps(BJ.jobs_blocks([]))


def test_help_and_errors():
    assert_within_limits(BJ.help_blocks(HELP_TEXT))
    err = BJ.error_blocks("budget=x is not an amount", "abc12345")
    assert "ref `abc12345`" in json.dumps(err)
    payload = BJ.ephemeral(err, "budget=x is not an amount")
    assert payload["response_type"] == "ephemeral" and "blocks" in payload
    assert "blocks" not in BJ.ephemeral([], "quoting…")
