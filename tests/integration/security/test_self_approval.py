"""Finding 9: a non-approver could self-approve `budget=5000 cap=7500`: the four-eyes rule looked
at the budget only. Now approval is judged on the cap (the most money at risk): above the team's
self-approval limit (trainops.toml [security] self_approve_limit_usd) only an approver may."""

from __future__ import annotations

from tests.integration.security.conftest import SELF_APPROVE_LIMIT
from tests.support.slack_harness import REQUESTER, quoted
from workers.state.jobs import get_job


def test_a_big_cap_needs_an_approver_even_within_budget(bot):
    job, _ = quoted(bot, f"sft smoke model=tiny budget=50 cap={SELF_APPROVE_LIMIT * 5}")
    bot.click("approve", job.job_id, REQUESTER, job.root_ts)
    refusal = bot.slack.wait_for("response_url")[0].json
    assert refusal["response_type"] == "ephemeral"
    assert f"self-approval limit of ${SELF_APPROVE_LIMIT}.00" in refusal["text"]
    assert "approver must approve" in refusal["text"]
    assert get_job(bot.app_db, job.job_id).status.value == "awaiting_approval"
    assert not bot.slack.of("chat.update"), "the quote keeps its buttons"
