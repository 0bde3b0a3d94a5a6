"""The pure rules behind issue #14: who may approve custom code and big caps, where data may come
from, what the grammar accepts as a number, and what redaction takes out."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from bot.grammar.commands import parse_request
from bot.grammar.values import ParseError
from schemas.config import DataAccess, Security, load_config
from schemas.data_access import data_refusal
from schemas.redact import MASK, redact
from workers.rules.budget import needs_approver_for_code, rule_on_approval

APPROVERS = frozenset({"UAPP"})


def _rule(actor, cap="50", code=None, limit="100"):
    return rule_on_approval(decision="approve", actor=actor, requester="UREQ",
                            approvers=APPROVERS, budget_usd=Decimal("50"), cap_usd=Decimal(cap),
                            cheapest_feasible_usd=Decimal("1"), custom_code=code,
                            self_approve_limit_usd=Decimal(limit))


def test_custom_code_needs_an_approver_every_time():
    why = needs_approver_for_code(SimpleNamespace(command="python train.py"))
    assert why == "it runs your own code (command=python train.py)"
    assert needs_approver_for_code(SimpleNamespace(command=None, reward="rewards.py:score"))
    assert needs_approver_for_code(SimpleNamespace(command=None, reward="length")) is None
    assert not _rule("UREQ", code=why).allowed
    assert _rule("UAPP", code=why).allowed


def test_self_approval_is_judged_on_the_cap():
    assert _rule("UREQ", cap="100").allowed
    refused = _rule("UREQ", cap="7500")
    assert not refused.allowed and "self-approval limit of $100.00" in refused.message
    assert _rule("UAPP", cap="7500").allowed


@pytest.mark.parametrize("data, allowed", [
    ("demo", True), ("org/dataset", True), ("/etc/passwd", False), ("./x.jsonl", False),
    ("/srv/data/train.jsonl", True), ("/srv/data/../../etc/passwd", False),
    ("s3://team-data/train/a.jsonl", True), ("s3://team-data/other/a.jsonl", False),
    ("s3://someone-elses-bucket/x", False), ("file:///srv/data/a.jsonl", True),
])
def test_data_roots(data, allowed):
    why = data_refusal(data, ["/srv/data"], ["s3://team-data/train"])
    assert (why is None) == allowed, why


def test_the_grammar_refuses_closed_features_with_one_line():
    config = load_config(None)
    with pytest.raises(ParseError, match="allow_commands = true"):
        parse_request('sft command="echo hi"', config)
    with pytest.raises(ParseError, match="outside the folders"):
        parse_request("sft data=/etc/passwd", config)
    with pytest.raises(ParseError, match="outside the S3 locations"):
        parse_request("sft data=s3://someone-elses-bucket/x", config)
    opened = config.model_copy(update={"security": Security(allow_commands=True),
                                       "data": DataAccess(local_roots=["/srv/data"])})
    assert parse_request('sft command="echo hi"', opened).command == "echo hi"
    assert parse_request("sft data=/srv/data/a.jsonl", opened).data == "/srv/data/a.jsonl"


@pytest.mark.parametrize("text", ["sft budget=５０", "sft budget=$１００", "sft cap=５",
                                  "sft warn=８０%", "sft samples=５k", "sft deadline=２h"])
def test_full_width_digits_are_not_numbers(text):
    with pytest.raises(ParseError):
        parse_request(text, load_config(None))


def test_redaction():
    text = ("token=xoxb-123456789012-abcdefABCDEF awskey=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLE "
            "id=AKIAIOSFODNN7EXAMPLE url=postgresql://u:hunter2pass@db/x step=12 loss=0.5")
    out = redact(text, ["s3cr3t-value"])
    for secret in ("xoxb-", "wJalr", "AKIA", "hunter2pass"):
        assert secret not in out
    assert "step=12 loss=0.5" in out and MASK in out
    assert redact("my s3cr3t-value here", ["s3cr3t-value"]) == f"my {MASK} here"
