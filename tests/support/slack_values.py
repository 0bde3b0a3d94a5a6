"""Values for the Slack tests: quotes, options, job views and guard cards, and the check that a
payload stays within Slack's limits. Pure: shared by the unit tests of the builders and the
integration tests of the notifier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.grammar.commands import parse_request
from bot.slack.blocks import quote as B
from schemas.config import load_config
from schemas.spec import Quote, QuoteOption
from tests.support.slack_harness import CHANNEL, REQUESTER
from workers.quoting import make_quote
from workers.rules.cards import ProgressCard, WarningCard
from workers.state.records import JobView

CONFIG = load_config(None)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
D = Decimal


def quote_for(text: str) -> Quote:
    return make_quote(parse_request(text, CONFIG), CONFIG, live=False)


def option(market="spot", cost=10.0, feasible=True, fits=True, **kw) -> QuoteOption:
    return QuoteOption(**{
        "instance_type": "g5.xlarge", "gpu": "A10G", "gpu_count": 1, "gpu_memory_gb": 24,
        "market": market, "region": "us-east-1", "hourly_usd": 0.5, "price_source": "live",
        "price_age_s": 90, "hours": 2.0, "cost_usd": cost, "cost_p90_usd": cost * 1.2,
        "feasible": feasible, "fits_budget": fits, "phases": {"setup": 0.1, "train": 1.8},
        **kw})


def with_options(base: Quote, options, recommended, over=0.0) -> Quote:
    return base.model_copy(update={"options": options, "recommended": recommended,
                                   "over_budget_usd": over})


BASE = quote_for("sft smoke model=tiny budget=50")


def assert_within_limits(blocks: list[dict], job_id: str | None = None) -> None:
    assert len(blocks) <= B.MAX_BLOCKS
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= B.SECTION_TEXT_MAX
            assert block["text"]["text"].count("```") % 2 == 0, "a cut code block stays closed"
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            assert all(len(e["text"]) <= B.CONTEXT_TEXT_MAX for e in block["elements"])
        if block["type"] == "actions":
            ids = [e["action_id"] for e in block["elements"]]
            assert len(ids) == len(set(ids))
            for e in block["elements"]:
                assert len(e["value"]) <= B.BUTTON_VALUE_MAX and e["value"] == job_id
                assert len(e["text"]["text"]) <= B.BUTTON_TEXT_MAX


def job_view(**kw) -> JobView:
    values = dict(job_id="j-4f2a9c", status="running", requester="U1", channel="C1",
                  root_ts="1.2", text="sft reduced budget=100", budget_usd=100, cap_usd=150,
                  warn=0.8, spend_usd=37.5, created_at=NOW, updated_at=NOW, quote=BASE,
                  approved_by="U2", decided_at=NOW, quote_expires_at=NOW + timedelta(hours=24))
    values.update(kw)
    return JobView(**values)


def progress(**kw) -> ProgressCard:
    values = dict(job_id="j-4f2a9c", step=120, total_steps=1000, loss=1.23456,
                  tokens_per_s=2345.6, eta_s=2520.0, spent_usd=D("12.34"), cap_usd=D("50"),
                  warn_usd=D("40"), projected_final_usd=D("41.10"), instance_type="g5.xlarge",
                  market="spot", attempt=1, phase="training", updated_at=NOW)
    values.update(kw)
    return ProgressCard(**values)


def warning(**kw) -> WarningCard:
    values = dict(job_id="j-4f2a9c", requester="UREQ", spent_usd=D("40.00"), cap_usd=D("50"),
                  projected_final_usd=D("61.00"), reason="80% of the cap reached")
    values.update(kw)
    return WarningCard(**values)


def notify_view(**kw) -> JobView:
    values = dict(job_id="j-abc123", status="running", requester=REQUESTER, channel=CHANNEL,
                  root_ts="1700000001.000100", text="sft smoke", budget_usd=50, cap_usd=50,
                  warn=0.8, spend_usd=0, created_at=NOW, updated_at=NOW, quote=BASE)
    values.update(kw)
    return JobView(**values)
