"""The spend guard in Slack end to end: the warning reaches the fake Slack with its buttons, signed
clicks go to the real HTTP endpoint, workers.state.spend_actions applies them to the real database
(and control.json in the store), and `/train resume` goes through the real Celery worker.

A running job is made through the jobs service and the tables (quote, approve, an attempt),
not by launching a machine; the monitor that would raise the warning is tested in tests/guard.
"""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import pytest

from tests.support.slack_harness import (
    APPROVER,
    BYSTANDER,
    CHANNEL,
    REQUESTER,
    SMALL,
    _job,
    buttons,
    wait_until,
)

ROOT = "1700000000.000001"
D = Decimal


@pytest.fixture
def make_job(bot):
    """make_job(status, spend) -> a job in `status` with one attempt, its quote the thread's
    root. Every job made here ends failed at teardown, so no other area's monitor (the
    PostgreSQL database is shared) ever sees it live."""
    from bot.grammar.commands import parse_request
    from schemas.config import cached_config
    from schemas.db.tables import Attempt
    from schemas.settings import get_settings
    from schemas.spec import utcnow
    from schemas.status import JobStatus as S
    from workers.quoting import make_quote
    from workers.state.jobs import open_job, set_root_message
    from workers.state.records import claim, update_fields

    config = cached_config(get_settings().config_path)
    made: list[str] = []

    def make(status: str = "running", spend: str = "40") -> str:
        quote = make_quote(parse_request(SMALL, config), config, live=False)
        job_id = open_job(bot.app_db, quote, REQUESTER, CHANNEL, provider="local")
        made.append(job_id)
        set_root_message(bot.app_db, job_id, CHANNEL, ROOT)
        path = {"running": [S.approved, S.provisioning, S.running],
                "interrupted": [S.approved, S.provisioning, S.running, S.interrupted],
                "stopped_at_cap": [S.approved, S.provisioning, S.running, S.stopped_at_cap]}
        with bot.app_db.session() as s:
            update_fields(s, job_id, cap_usd=D("50"), budget_usd=D("50"), spend_usd=D(spend))
            before = S.awaiting_approval
            for target in path[status]:
                assert claim(s, job_id, before, target, approved_by=REQUESTER,
                             decided_at=utcnow())
                if target == S.provisioning:
                    s.add(Attempt(job_id=job_id, attempt=1, provider="local",
                                  instance_id=f"local-{job_id}", instance_type="local",
                                  market="on-demand", hourly_usd=D("2"), launched_at=utcnow()))
                before = target
        return job_id

    yield make
    with bot.app_db.session() as s:
        for job_id in made:
            job = _job(bot, job_id)
            if job.status.is_live():
                claim(s, job_id, job.status, S.failed)


def post_warning(bot, job_id: str):
    """The monitor's call, made by hand: SlackNotifier.warning for this job."""
    from bot.slack.notifier import SlackNotifier
    from schemas.settings import get_settings
    from workers.rules.cards import WarningCard

    card = WarningCard(job_id=job_id, requester=REQUESTER, spent_usd=D("40"), cap_usd=D("50"),
                       projected_final_usd=D("61"), reason="80% of the cap reached")
    SlackNotifier(get_settings()).warning(_job(bot, job_id), card)
    post = bot.slack.wait_for("chat.postMessage")[-1]
    (actions,) = [b for b in post.blocks() if b["type"] == "actions"]
    return post, {"blocks": post.blocks(), "block_id": actions["block_id"]}


def control(job_id: str):
    from schemas.settings import get_settings
    from schemas.store import open_store
    from workers.monitor.control import read_control

    return read_control(open_store(get_settings().store), job_id)


def refusals(bot, count: int = 1) -> list[str]:
    return [c.json["text"] for c in bot.slack.wait_for("response_url", count=count)]


def test_warning_reaches_slack_and_only_an_approver_extends(bot, make_job):
    job_id = make_job()
    post, message = post_warning(bot, job_id)
    warning_ts = post.answer["ts"]
    assert post.body["reply_broadcast"] is True and post.body["thread_ts"] == ROOT
    assert list(buttons(post)) == ["extend_cap", "stop_now", "let_run"]
    assert set(buttons(post).values()) == {job_id}
    text = json.dumps(post.blocks())
    assert f"<@{REQUESTER}>" in text and "Extend cap by $13" in text

    assert bot.click("extend_cap", job_id, REQUESTER, warning_ts, **message) == 200
    assert "only an approver can extend the cap" in refusals(bot)[0]
    assert _job(bot, job_id).cap_usd == 50 and not bot.slack.of("chat.update")

    assert bot.click("extend_cap", job_id, APPROVER, warning_ts, **message) == 200
    update = bot.slack.wait_for("chat.update")[0]
    assert update.body["ts"] == warning_ts, "the warning itself is updated in place"
    assert not [b for b in update.blocks() if b["type"] == "actions"], "buttons must go"
    assert f"<@{APPROVER}>" in json.dumps(update.blocks())
    assert "cap now $63.00" in json.dumps(update.blocks())
    line = bot.slack.wait_for("chat.postMessage", count=2)[-1]
    assert line.body["thread_ts"] == ROOT and "$50.00 -> $63.00" in line.body["text"]
    after = _job(bot, job_id)
    assert after.cap_usd == 63 and after.warned_at_cap is None
    assert any(e["kind"] == "cap_extended" and e["actor"] == APPROVER for e in after.events)
    assert control(job_id).cap_usd == 63, "the agent hears of the new cap at once"


def test_five_fast_extend_clicks_extend_once(bot, make_job):
    job_id = make_job()
    post, message = post_warning(bot, job_id)
    start = threading.Barrier(5)

    def click():
        start.wait()
        bot.click("extend_cap", job_id, APPROVER, post.answer["ts"], **message)

    threads = [threading.Thread(target=click) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all("already $63.00" in text for text in refusals(bot, count=4))
    bot.slack.wait_for("chat.update")
    time.sleep(0.3)  # let any (wrong) second update arrive before counting
    assert len(bot.slack.of("chat.update")) == 1 and _job(bot, job_id).cap_usd == 63
    assert [e["kind"] for e in _job(bot, job_id).events].count("cap_extended") == 1


def test_stop_now_by_the_requester(bot, make_job):
    job_id = make_job()
    post, message = post_warning(bot, job_id)
    bot.click("stop_now", job_id, BYSTANDER, post.answer["ts"], **message)
    assert "only the requester or an approver" in refusals(bot)[0]
    assert _job(bot, job_id).status.value == "running" and not control(job_id).stop

    bot.click("stop_now", job_id, REQUESTER, post.answer["ts"], **message)
    update = bot.slack.wait_for("chat.update")[0]
    assert update.body["ts"] == post.answer["ts"]
    assert "asked to stop now" in json.dumps(update.blocks())
    assert not [b for b in update.blocks() if b["type"] == "actions"]
    after = _job(bot, job_id)
    assert after.status.value == "stopping" and after.stop_requested_at is not None
    assert control(job_id).stop is True, "the agent is told to checkpoint and exit"
    line = bot.slack.wait_for("chat.postMessage", count=2)[-1]
    assert line.body["thread_ts"] == ROOT and f"<@{REQUESTER}>" in line.body["text"]


def test_let_it_run_to_the_cap(bot, make_job):
    job_id = make_job()
    post, message = post_warning(bot, job_id)
    bot.click("let_run", job_id, REQUESTER, post.answer["ts"], **message)
    update = bot.slack.wait_for("chat.update")[0]
    assert "let it run to the cap" in json.dumps(update.blocks())
    after = _job(bot, job_id)
    assert after.status.value == "running" and after.cap_usd == 50
    assert any(e["kind"] == "let_run" and e["actor"] == REQUESTER for e in after.events)


def test_continue_recovery_on_a_job_not_waiting_for_one_is_explained(bot, make_job):
    job_id = make_job()
    bot.click("continue_recovery", job_id, APPROVER, "1700000000.000777",
              block_id=f"recovery:{job_id}")
    assert "not waiting for a recovery decision" in refusals(bot)[0]
    assert not bot.slack.of("chat.update")


def test_recovery_question_answered_with_stop(bot, make_job):
    from bot.slack.notifier import SlackNotifier
    from schemas.settings import get_settings

    job_id = make_job("interrupted")
    SlackNotifier(get_settings()).ask_recovery(
        _job(bot, job_id), "the next option needs $14.00 and $10.00 is left. Continue?")
    ask = bot.slack.wait_for("chat.postMessage")[0]
    assert list(buttons(ask)) == ["continue_recovery", "stop_now"]
    assert ask.body["reply_broadcast"] is True and f"<@{REQUESTER}>" in json.dumps(ask.blocks())
    bot.click("stop_now", job_id, REQUESTER, ask.answer["ts"], blocks=ask.blocks(),
              block_id=f"recovery:{job_id}")
    update = bot.slack.wait_for("chat.update")[0]
    assert update.body["ts"] == ask.answer["ts"] and "asked to stop now" in json.dumps(
        update.blocks())
    assert not [b for b in update.blocks() if b["type"] == "actions"]
    after = _job(bot, job_id)
    assert after.status.value == "cancelled", "no machine to stop: the recovery is called off"
    assert after.failure_cause == "cancelled_during_recovery"


def test_resume_posts_a_new_quote_for_the_work_left(bot, make_job):
    from schemas.job import Progress
    from schemas.settings import get_settings
    from schemas.store import job_prefix, open_store, write_json, write_model

    old = make_job("stopped_at_cap", spend="50")
    store = open_store(get_settings().store)
    write_json(store, f"{job_prefix(old)}/checkpoints/step-40/MANIFEST.json",
               {"step": 40, "files": []})
    write_model(store, f"{job_prefix(old)}/progress.json",
                Progress(phase="train", attempt=1, step=42, total_steps=100))

    answer = bot.command(f"resume {old} budget=+50")
    assert answer["response_type"] == "ephemeral" and f"rest of {old}" in answer["text"]
    quote = bot.slack.wait_for("chat.postMessage", where=lambda c: "thread_ts" not in c.body)[0]
    new = buttons(quote)["approve"]
    assert new != old and set(buttons(quote)) == {"approve", "reject"}
    assert f"resumes {old} from checkpoint step 40" in json.dumps(quote.blocks())
    job = wait_until(lambda: (j := _job(bot, new)) and j.root_ts and j, what="root recorded")
    assert job.root_ts == quote.answer["ts"] and job.resume_of == old
    assert job.status.value == "awaiting_approval" and job.requester == REQUESTER
    assert job.budget_usd == 50
    told = bot.slack.wait_for("chat.postMessage", where=lambda c: c.body.get("thread_ts"))[0]
    assert told.body["thread_ts"] == ROOT and new in told.body["text"]


def test_resume_of_a_running_job_is_one_ephemeral_line(bot, make_job):
    job_id = make_job()
    bot.command(f"resume {job_id} budget=+50")
    told = bot.slack.wait_for("response_url")[0].json
    assert told["response_type"] == "ephemeral"
    assert "only a job stopped at its cap, stopped, or failed can be resumed" in told["text"]
    assert not bot.slack.of("chat.postMessage")


def test_resume_of_an_unknown_job_is_refused_in_the_ack(bot):
    answer = bot.command("resume j-000000 budget=+50")
    assert answer["response_type"] == "ephemeral" and "no job j-000000" in answer["text"]
