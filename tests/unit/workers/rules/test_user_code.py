"""User code in a request (a reward file, a command) needs an approver's click, even within
budget; reward files are checked before any machine launches (issue #12)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from schemas.errors import UserError
from workers.quoting.rewards import check_reward_file, is_user_reward, reward_syntax_error
from workers.rules.budget import OPERATOR, needs_approver_for_code, rule_on_approval, user_code

APPROVERS = frozenset({"U_APPROVER"})


def test_user_code_lists_command_and_reward_files_verbatim():
    assert user_code(None, None) == []
    assert user_code(None, "exact") == []
    assert user_code(None, "regex:^a.py:b$") == []  # a built-in, whatever its pattern says
    assert user_code("python train.py --lr 1e-4", "rewards/score.py:score") == [
        "command=python train.py --lr 1e-4", "reward=rewards/score.py:score"]


def _rule(decision, actor, request):
    return rule_on_approval(
        decision=decision, actor=actor, requester="U_REQ", approvers=APPROVERS,
        budget_usd=Decimal(100), cap_usd=Decimal(100), cheapest_feasible_usd=Decimal(5),
        cheapest_on_demand_usd=Decimal(9), custom_code=needs_approver_for_code(request))


@pytest.mark.parametrize("decision", ["approve", "approve_on_demand"])
def test_the_requester_alone_cannot_approve_user_code(decision):
    ruling = _rule(decision, "U_REQ", SimpleNamespace(command=None, reward="score.py:score"))
    assert not ruling.allowed
    assert "only an approver may approve this job" in ruling.message
    assert "even within budget" in ruling.message
    assert "score.py:score" in ruling.message


def test_approvers_the_operator_and_rejections_pass():
    code = SimpleNamespace(command=None, reward="score.py:score")
    for actor in ("U_APPROVER", OPERATOR):
        assert _rule("approve", actor, code).allowed
    assert _rule("reject", "U_REQ", code).allowed
    assert _rule("approve", "U_REQ", SimpleNamespace(command=None, reward="exact")).allowed


def test_reward_syntax():
    for ok in ("exact", "JSON", "length:40", "numeric + 0.2*length:8", "json:answer=int",
               "regex:^\\d+$", "dir/score.py:score"):
        assert reward_syntax_error(ok) is None
    assert "unknown reward" in reward_syntax_error("bleu")
    assert "name the function after the file" in reward_syntax_error("score.py")
    assert is_user_reward("score.py:fn") and not is_user_reward("exact")


def test_reward_files_are_read_not_run(tmp_path):
    (tmp_path / "score.py").write_text(
        "import sys\nsys.exit(3)  # never executed by the check\n"
        "LIMIT = 3\n\ndef score(prompt, completion, answer):\n    return 1.0\n")
    assert check_reward_file("score.py:score", tmp_path) is None
    assert "has no function nope: it defines score" in check_reward_file("score.py:nope",
                                                                          tmp_path)
    assert "is not a function" in check_reward_file("score.py:LIMIT", tmp_path)
    assert "does not exist" in check_reward_file("missing.py:score", tmp_path)
    (tmp_path / "broken.py").write_text("def score(:\n")
    assert "is not valid Python (line 1)" in check_reward_file("broken.py:score", tmp_path)
    assert check_reward_file("s3://bucket/score.py:score", tmp_path) is None
    assert check_reward_file("exact", tmp_path) is None


def test_a_quote_with_a_missing_reward_file_is_refused_in_one_line(config, tmp_path,
                                                                   monkeypatch):
    from bot.grammar.commands import parse_request
    from workers.quoting import make_quote

    monkeypatch.chdir(tmp_path)
    request = parse_request("rl reduced reward=nothere.py:score", config)
    with pytest.raises(UserError) as caught:
        make_quote(request, config, live=False)
    assert str(caught.value).startswith("reward 'nothere.py:score': file nothere.py does not exist")
